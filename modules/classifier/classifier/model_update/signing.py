"""What a model signature covers, and how the module checks one.

A signature is ed25519 over ``SIGNED_PREFIX + <sha256 of the file, lower-case hex>``. Signing
the digest rather than the raw bytes lets both sides stream files of any size, and the prefix
keeps a model signature from being valid for anything else the same key might sign. The
operator's tool (``python -m cloud_tools keys sign``) builds the message with the same function.

The device's public key (``MODEL_SIGNING_PUBLIC_KEY``) is the raw 32-byte key in base64, as
``keys new`` prints it. With a key configured, unsigned or badly signed models are refused.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from classifier.errors import ConfigError, ModelUpdateError, UpdateErrorCode

SIGNED_PREFIX = b"edge-classifier/model-signature/v1\n"


def signed_message(sha256_hex: str) -> bytes:
    return SIGNED_PREFIX + sha256_hex.lower().encode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A raw ed25519 public key in base64 (32 bytes); ``ConfigError`` otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"MODEL_SIGNING_PUBLIC_KEY is not base64: {e}") from e
    if len(raw) != 32:
        raise ConfigError(
            f"MODEL_SIGNING_PUBLIC_KEY must be a raw 32-byte ed25519 key, got {len(raw)} bytes"
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def check_signature(key: Ed25519PublicKey | None, sha256_hex: str, signature: bytes | None) -> None:
    """Raises unless the signature is valid, or no key is configured (signing not required)."""
    if key is None:
        return
    if signature is None:
        raise ModelUpdateError(
            UpdateErrorCode.SIGNATURE_REQUIRED,
            "this device requires signed models and model.signature is missing",
        )
    try:
        key.verify(signature, signed_message(sha256_hex))
    except InvalidSignature:
        raise ModelUpdateError(
            UpdateErrorCode.SIGNATURE_INVALID,
            "model.signature does not verify with the device's public key",
        ) from None
