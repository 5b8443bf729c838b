"""Ed25519 signatures of the manifest: `model.json.sig` holds base64 of the signature over model.json's bytes."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

SIGNATURE_NAME = "model.json.sig"


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
    key = load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the signing key is not an Ed25519 private key")
    return base64.b64encode(key.sign(manifest)).decode() + "\n"


def verify(manifest: bytes, signature_text: str, key: Ed25519PublicKey) -> None:
    try:
        key.verify(base64.b64decode(signature_text.strip(), validate=True), manifest)
    except (InvalidSignature, binascii.Error, ValueError):
        raise SignatureError(f"{SIGNATURE_NAME} is not a valid signature of model.json by MODEL_PUBLIC_KEY") from None
