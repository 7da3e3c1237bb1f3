"""Keys: RSA key pairs for service accounts, and the platform's own signing key."""
import base64
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from dispatch.store.sealing import SecretBox


def new_key_pair(bits: int = 2048) -> tuple[bytes, str]:
    """A private key (PEM, unencrypted PKCS#8) and its public key as a service account's
    `publicKey` (base64 of the PEM)."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(public).decode()


def write_private(path: Path, pem: bytes) -> None:
    """Write a private key readable by its owner only, never through a wider moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)


def encoded_public_key(pem_file: Path) -> str:
    """A PEM public key file as a service account's `publicKey`."""
    return base64.b64encode(Path(pem_file).read_bytes()).decode()


def platform_key(box: SecretBox) -> ed25519.Ed25519PrivateKey:
    """The key the platform signs its own tokens with (a function's identity): derived from the
    key that seals secrets, so every process of an installation has it and nothing else does."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(box.derived("platform tokens"))
