"""Encryption at rest: AES-256-GCM with a key per owner derived from one master key.

    master key (LLMASOS_MASTER_KEY, 32 bytes as 64 hex digits or urlsafe base64)
      -> HKDF-SHA256(info = "llmasos/v1/owner/" + owner) -> that owner's AES-GCM key
    sealed record = b"LS1" + 12-byte random nonce + ciphertext and tag

What a record is bound to (its namespace, path and version; an agent's memory entry id) goes in
as associated data, so a record copied onto another path or version fails to open as surely as
a flipped byte. A record that fails to open raises IntegrityError; nothing is returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from llmasos.errors import IntegrityError, InvalidRequestError

MAGIC = b"LS1"
NONCE_BYTES = 12
KEY_BYTES = 32


def parse_master_key(text: str, field: str = "LLMASOS_MASTER_KEY") -> bytes:
    """32 bytes from 64 hex digits or urlsafe base64 (e.g. `python -c "import secrets;
    print(secrets.token_hex(32))"`)."""
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 2 * KEY_BYTES else base64.urlsafe_b64decode(text)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != KEY_BYTES:
        raise InvalidRequestError(
            field, "must be 32 bytes as 64 hex digits or urlsafe base64 (secrets.token_hex(32))"
        )
    return key


class Sealer:
    """Seals and opens records for owners, with keys derived once per owner and kept."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != KEY_BYTES:
            raise InvalidRequestError("master_key", f"must be {KEY_BYTES} bytes")
        self._master = master_key
        self._keys: dict[str, AESGCM] = {}
        self._digest_keys: dict[str, bytes] = {}  # derived once per owner, as the ciphers are
        self._lock = threading.Lock()

    def _derive(self, purpose: str, owner: str) -> bytes:
        info = f"llmasos/v1/{purpose}/".encode() + owner.encode("utf-8", "surrogateescape")
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info)
        return hkdf.derive(self._master)

    def _cipher(self, owner: str) -> AESGCM:
        with self._lock:
            cipher = self._keys.get(owner)
            if cipher is None:
                cipher = self._keys[owner] = AESGCM(self._derive("owner", owner))
            return cipher

    def digest(self, owner: str, data: bytes) -> str:
        """A keyed digest of `data` (HMAC-SHA256 under the owner's digest key): it tells
        versions apart without letting anyone confirm a guess of the content."""
        with self._lock:
            key = self._digest_keys.get(owner)
            if key is None:
                key = self._digest_keys[owner] = self._derive("digest", owner)
        return hmac.new(key, data, hashlib.sha256).hexdigest()

    def seal(self, owner: str, bound_to: bytes, data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + nonce + self._cipher(owner).encrypt(nonce, data, bound_to)

    def open(self, owner: str, bound_to: bytes, record: bytes) -> bytes:
        """The plaintext of `record`, or IntegrityError when it was altered, moved or sealed
        with another key."""
        if not record.startswith(MAGIC) or len(record) < len(MAGIC) + NONCE_BYTES + 16:
            raise IntegrityError(f"{describe(bound_to)}: the record is not sealed data")
        nonce = record[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._cipher(owner).decrypt(nonce, record[len(MAGIC) + NONCE_BYTES :], bound_to)
        except InvalidTag:
            raise IntegrityError(
                f"{describe(bound_to)}: the sealed record failed its integrity check (altered, "
                "moved, or sealed with another master key); it was not returned"
            ) from None


def describe(bound_to: bytes) -> str:
    return bound_to.decode("utf-8", "replace").replace("\x00", " ")
