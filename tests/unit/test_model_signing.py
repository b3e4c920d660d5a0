"""Model signatures: ed25519 over the file's digest, required once the device has a key."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from classifier.errors import ConfigError, ModelUpdateError, UpdateErrorCode
from classifier.model_update.signing import check_signature, parse_public_key, signed_message

SHA = "cd" * 32


def key_pair() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return private, base64.b64encode(raw).decode()


def test_a_good_signature_passes() -> None:
    private, public = key_pair()
    check_signature(parse_public_key(public), SHA, private.sign(signed_message(SHA)))


def test_without_a_device_key_signatures_are_not_required() -> None:
    check_signature(None, SHA, None)


def test_with_a_device_key_an_unsigned_model_is_refused() -> None:
    _, public = key_pair()
    with pytest.raises(ModelUpdateError) as e:
        check_signature(parse_public_key(public), SHA, None)
    assert e.value.code is UpdateErrorCode.SIGNATURE_REQUIRED


def test_a_signature_by_another_key_is_refused() -> None:
    other, _ = key_pair()
    _, public = key_pair()
    with pytest.raises(ModelUpdateError) as e:
        check_signature(parse_public_key(public), SHA, other.sign(signed_message(SHA)))
    assert e.value.code is UpdateErrorCode.SIGNATURE_INVALID


def test_a_signature_for_another_file_is_refused() -> None:
    private, public = key_pair()
    with pytest.raises(ModelUpdateError) as e:
        check_signature(parse_public_key(public), SHA, private.sign(signed_message("ef" * 32)))
    assert e.value.code is UpdateErrorCode.SIGNATURE_INVALID


def test_a_signature_over_the_bare_digest_is_not_a_model_signature() -> None:
    # The prefix binds a signature to this use: the same key signing something else cannot
    # produce a valid model signature.
    private, public = key_pair()
    with pytest.raises(ModelUpdateError):
        check_signature(parse_public_key(public), SHA, private.sign(SHA.encode()))


@pytest.mark.parametrize("text", ["not base64", base64.b64encode(b"short").decode()])
def test_a_malformed_device_key_is_a_configuration_error(text: str) -> None:
    with pytest.raises(ConfigError, match="MODEL_SIGNING_PUBLIC_KEY"):
        parse_public_key(text)
