"""Encryption at rest and pseudonyms: AES-GCM for bodies and addresses, keyed HMAC for ids."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

_VERSION = b"\x01"  # first byte of every ciphertext, so keys/algorithms can rotate later
_NONCE = 12


class DecryptionError(ValueError):
    """A stored value could not be decrypted with the configured key."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"qingting", info=purpose).derive(master)


class Vault:
    """Encrypts message bodies and platform addresses, and derives pseudonyms, from one secret."""

    def __init__(self, secret: str | bytes) -> None:
        master = secret.encode() if isinstance(secret, str) else secret
        if len(master) < 16:
            raise ValueError("QINGTING_SECRET_KEY must be at least 16 characters")
        self._aead = AESGCM(_derive(master, b"encrypt-v1"))
        self._pseudonym_key = _derive(master, b"pseudonym-v1")
        self._token_key = _derive(master, b"token-v1")

    def encrypt(self, plaintext: str) -> bytes:
        """Ciphertext of a UTF-8 string (random nonce; the same text encrypts differently)."""
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), None)

    def decrypt(self, blob: bytes) -> str:
        """Plaintext of a value made by encrypt(); raises DecryptionError on a wrong key."""
        if not blob or blob[:1] != _VERSION:
            raise DecryptionError("unknown ciphertext version")
        nonce, body = blob[1 : 1 + _NONCE], blob[1 + _NONCE :]
        try:
            return self._aead.decrypt(nonce, body, None).decode("utf-8")
        except Exception as exc:  # InvalidTag: wrong key or tampered row
            raise DecryptionError("cannot decrypt stored value") from exc

    def pseudonym(self, channel: str, address: str) -> str:
        """Stable pseudonymous reporter id for (channel, address): a keyed HMAC, not reversible."""
        mac = hmac.new(self._pseudonym_key, f"{channel}\x00{address}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def token_digest(self, token: str) -> str:
        """Keyed digest of a bearer token, so the database never holds a usable token."""
        return hmac.new(self._token_key, token.encode(), hashlib.sha256).hexdigest()


def load_or_create_secret(var_dir: Path, configured: str | None) -> str:
    """The secret from QINGTING_SECRET_KEY, else var/secret.key, generated on first run."""
    if configured:
        return configured
    path = var_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    log.warning(
        "QINGTING_SECRET_KEY is not set: generated a new key in %s. Back it up: without it "
        "the stored conversations cannot be read.",
        path,
    )
    return secret
