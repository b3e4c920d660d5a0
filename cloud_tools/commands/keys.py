"""``python -m cloud_tools keys ...``: the ed25519 key pair that signs models.

    keys new --out DIR [--name model-signing]   private key (PEM, mode 0600) and public key
    keys sign FILE.onnx --key DIR/model-signing.key

The device gets the public key as ``MODEL_SIGNING_PUBLIC_KEY`` (raw 32 bytes, base64, as
``keys new`` prints it) and then refuses unsigned or badly signed models. ``model push
--sign-key`` signs as it pushes; ``keys sign`` prints a signature for a model pushed by URL.
"""

from __future__ import annotations

import argparse
import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from classifier.engine import file_sha256
from classifier.model_update.signing import signed_message
from cloud_tools.errors import USAGE, CliError


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("keys", help="model-signing keys")
    verbs = parser.add_subparsers(dest="verb", required=True)
    new = verbs.add_parser("new", help="make a key pair")
    new.add_argument("--out", type=Path, required=True)
    new.add_argument("--name", default="model-signing")
    new.set_defaults(run=_new)
    sign = verbs.add_parser("sign", help="print a model file's signature (base64)")
    sign.add_argument("file", type=Path)
    sign.add_argument("--key", type=Path, required=True)
    sign.set_defaults(run=_sign)


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise CliError(f"cannot read the private key {path}: {e}", USAGE) from e
    if not isinstance(key, Ed25519PrivateKey):
        raise CliError(f"{path} is not an ed25519 private key", USAGE)
    return key


def _new(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    private_path = args.out / f"{args.name}.key"
    public_path = args.out / f"{args.name}.pub"
    if private_path.exists():
        raise CliError(f"{private_path} exists; refusing to overwrite a signing key", USAGE)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_key_text(key)
    public_path.write_text(public + "\n")
    print(f"private key  {private_path} (keep it off devices)")
    print(f"public key   {public_path}")
    print(f"device env   MODEL_SIGNING_PUBLIC_KEY={public}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise CliError(f"no file at {args.file}", USAGE)
    key = load_private_key(args.key)
    print(base64.b64encode(key.sign(signed_message(file_sha256(args.file)))).decode())
    return 0
