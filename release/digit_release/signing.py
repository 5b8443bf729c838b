"""Ed25519 signatures of the manifest: `model.json.sig` holds base64 of the signature over model.json's bytes.

    digit-sign generate --private-key release-key.pem   # prints the public key for MODEL_PUBLIC_KEY
    digit-sign sign RELEASE_DIR --private-key release-key.pem
    digit-sign verify RELEASE_DIR --public-key KEY

The publisher signs with `sign`, the poller checks with `verify`: one format, one place.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from digit_release.manifest import MANIFEST_NAME, SIGNATURE_NAME


class SignatureError(ValueError):
    pass


def load_public_key(text: str) -> Ed25519PublicKey:
    """PEM text, the path of a PEM file, or the raw 32-byte key in base64."""
    if not text.lstrip().startswith("-----BEGIN") and Path(text).is_file():
        text = Path(text).read_text(encoding="utf-8")
    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise SignatureError(f"MODEL_PUBLIC_KEY is not an Ed25519 public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("MODEL_PUBLIC_KEY is not an Ed25519 public key")
    return key


def sign(manifest: bytes, private_key_pem: bytes) -> str:
    """The content of `model.json.sig` for `manifest`: base64 of the Ed25519 signature, one line."""
    try:
        key = load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"the signing key is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the signing key is not an Ed25519 private key")
    return base64.b64encode(key.sign(manifest)).decode() + "\n"


def verify(manifest: bytes, signature_text: str, key: Ed25519PublicKey) -> None:
    try:
        key.verify(base64.b64decode(signature_text.strip(), validate=True), manifest)
    except (InvalidSignature, binascii.Error, ValueError):
        what = f"{SIGNATURE_NAME} is not a valid signature of {MANIFEST_NAME}"
        raise SignatureError(f"{what} by MODEL_PUBLIC_KEY") from None


def generate() -> tuple[bytes, str]:
    """A new key pair: the private key as PEM (keep it secret), the public key as base64 (MODEL_PUBLIC_KEY)."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return pem, base64.b64encode(public).decode()


def main(argv: list[str] | None = None) -> int:
    """`digit-sign generate|sign|verify`: the key tool matching what the poller checks."""
    parser = argparse.ArgumentParser(prog="digit-sign", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("generate", help="write a new private key (mode 0600) and print the public key")
    new.add_argument("--private-key", type=Path, required=True, help="where to write the PEM private key")
    signer = commands.add_parser("sign", help="write RELEASE_DIR/model.json.sig")
    signer.add_argument("release_dir", type=Path)
    signer.add_argument("--private-key", type=Path, required=True)
    checker = commands.add_parser("verify", help="check RELEASE_DIR/model.json.sig against a public key")
    checker.add_argument("release_dir", type=Path)
    checker.add_argument("--public-key", required=True, help="base64, PEM text or a PEM file (as MODEL_PUBLIC_KEY)")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            if args.private_key.exists():
                print(f"{args.private_key} exists: not overwriting a key", file=sys.stderr)
                return 1
            pem, public = generate()
            args.private_key.touch(mode=0o600)  # created private before a byte of the key is written
            args.private_key.write_bytes(pem)
            print(public)
        elif args.command == "sign":
            manifest = (args.release_dir / MANIFEST_NAME).read_bytes()
            (args.release_dir / SIGNATURE_NAME).write_text(sign(manifest, args.private_key.read_bytes()))
            print(f"signed {args.release_dir / MANIFEST_NAME}")
        else:
            manifest = (args.release_dir / MANIFEST_NAME).read_bytes()
            verify(manifest, (args.release_dir / SIGNATURE_NAME).read_text(), load_public_key(args.public_key))
            print("signature OK")
    except (OSError, SignatureError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
