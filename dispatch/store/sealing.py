"""Secret values are sealed (Fernet: AES-128-CBC + HMAC) before they leave the gateway, so they
never appear in plain text on the bus, in the event log or in the read models."""
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASK = "********"


class SecretBox:
    def __init__(self, key: bytes):
        self._fernet = Fernet(key)
        self._key = key

    def derived(self, purpose: str, length: int = 32) -> bytes:
        """A key for another purpose (signing the platform's own tokens), derived from this one
        (HKDF-SHA256): every process sharing the sealing key shares it, and it reveals nothing of it."""
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None,
                    info=f"dispatch {purpose}".encode()).derive(self._key)

    @classmethod
    def from_file(cls, path: Path) -> "SecretBox":
        """Load the key, creating it (readable by the owner only) on first use. Processes sharing
        the folder may start together: the key is written aside and linked into place, so each
        reads either nothing or a whole key, and the first link wins."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            aside = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
            try:
                os.link(aside, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                aside.unlink()
        return cls(path.read_bytes().strip())

    def seal(self, values: dict[str, str]) -> dict[str, str]:
        return {key: self._fernet.encrypt(str(value).encode()).decode() for key, value in values.items()}

    def open(self, sealed: dict[str, str]) -> dict[str, str]:
        try:
            return {key: self._fernet.decrypt(token.encode()).decode() for key, token in sealed.items()}
        except InvalidToken:
            raise ValueError("secret was sealed with another key") from None

    @staticmethod
    def masked(sealed: dict[str, str]) -> dict[str, str]:
        return {key: MASK for key in sealed}
