"""API keys: an owner and a role each, stored hashed with scrypt (a slow KDF, from Python's
hashlib over OpenSSL), with expiry and revocation; they survive restarts in the storage's first
shard. A key reads `llmk_<id>_<secret>`: the id finds the record, the secret is checked against
its hash, and only the id is ever shown again.

    roles   admin (everything, the administrative routes included), user (its own objects),
            read-only (its own objects, GET requests only)
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmasos.auth.capabilities import Capabilities
from llmasos.errors import AuthenticationError, InvalidRequestError, UnknownKeyError
from llmasos.storage.paths import check_name
from llmasos.storage.service import Storage

PREFIX = "llmk_"
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~30-60 ms a check: verified keys are cached
CACHE_S = 30.0  # a verified key is trusted this long without a new scrypt (revoke clears it)
REQUIRED_CHECK_S = 5.0


class Role(enum.Enum):
    ADMIN = "admin"
    USER = "user"
    READ_ONLY = "read-only"


@dataclass(frozen=True)
class KeyInfo:
    """What is kept of a key (never its secret)."""

    id: str
    owner: str
    role: Role
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    capabilities: Capabilities = field(default_factory=Capabilities)

    @property
    def active(self) -> bool:
        expired = self.expires_at is not None and self.expires_at <= time.time()
        return self.revoked_at is None and not expired

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "owner": self.owner, "role": self.role.value,
            "created_at": self.created_at, "expires_at": self.expires_at,
            "revoked_at": self.revoked_at, "active": self.active,
            "capabilities": self.capabilities.to_json(),
        }  # fmt: skip


def _caps(stored: str | None) -> Capabilities:
    return Capabilities.from_json(json.loads(stored)) if stored else Capabilities()


def _hash(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT, dklen=32)


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise InvalidRequestError("role", "must be admin, user or read-only") from None


class KeyStore:
    """The keys of one storage service."""

    def __init__(self, storage: Storage) -> None:
        self._db = storage.store.catalog.db
        self._verified: dict[bytes, tuple[KeyInfo, float]] = {}
        self._required: tuple[bool, float] | None = None
        self._lock = threading.Lock()
        self.on_login: Callable[[KeyInfo], None] | None = None  # after each full check

    def create(
        self,
        owner: str,
        role: Role | str,
        expires_in_s: float | None = None,
        capabilities: Capabilities | None = None,
    ) -> tuple[str, KeyInfo]:
        """A new key for `owner`: (the key, shown this once; its record). `capabilities` bound
        what its requests, processes and agents may touch."""
        check_name("owner", owner)
        role = parse_role(role) if isinstance(role, str) else role
        if expires_in_s is not None and not 0 < expires_in_s <= 10 * 365 * 86400:
            raise InvalidRequestError("expires_in_s", "must be > 0 and at most ten years")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = time.time()
        expires = now + expires_in_s if expires_in_s else None
        caps = capabilities or Capabilities()
        stored_caps = json.dumps(caps.to_json()) if caps != Capabilities() else None
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO api_keys (id, owner, role, salt, hash, created_at, expires_at, "
                "revoked_at, capabilities) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                (key_id, owner, role.value, salt, _hash(secret, salt), now, expires, stored_caps),
            )
        with self._lock:
            self._required = None
        info = KeyInfo(key_id, owner, role, now, expires, None, caps)
        return f"{PREFIX}{key_id}_{secret}", info

    def list(self) -> list[KeyInfo]:
        return self._records("ORDER BY created_at", ())

    def record(self, key_id: str) -> KeyInfo | None:
        """The key's record (None for an unknown id)."""
        found = self._records("WHERE id = ?", (key_id,))
        return found[0] if found else None

    def _records(self, where: str, params: tuple[str, ...]) -> list[KeyInfo]:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT id, owner, role, created_at, expires_at, revoked_at, capabilities FROM "
                f"api_keys {where}",
                params,
            )
        return [KeyInfo(i, o, Role(r), c, e, v, _caps(k)) for i, o, r, c, e, v, k in rows]

    def revoke(self, key_id: str) -> KeyInfo:
        with self._db.transaction() as tx:
            tx.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        with self._lock:
            self._verified.clear()
            self._required = None
        found = [k for k in self.list() if k.id == key_id]
        if not found:
            raise UnknownKeyError(key_id)
        return found[0]  # revoked now, or already (revoking twice changes nothing)

    def any_active(self) -> bool:
        return any(key.active for key in self.list())

    def required(self) -> bool:
        """Whether some active key exists, so that requests without one are refused
        (looked up at most every few seconds; keys made by another process count too)."""
        with self._lock:
            known = self._required
        if known is None or known[1] < time.monotonic():
            known = (self.any_active(), time.monotonic() + REQUIRED_CHECK_S)
            with self._lock:
                self._required = known
        return known[0]

    def verify(self, token: str) -> KeyInfo:
        """The key's record, or AuthenticationError (unknown, wrong, revoked or expired)."""
        fingerprint = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        with self._lock:
            cached = self._verified.get(fingerprint)
        if cached and cached[1] > time.monotonic() and cached[0].active:
            return cached[0]
        body = token[len(PREFIX) :] if token.startswith(PREFIX) else ""
        key_id, _, secret = body.partition("_")
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT owner, role, salt, hash, created_at, expires_at, revoked_at, "
                "capabilities FROM "
                "api_keys WHERE id = ?",
                (key_id,),
            )
        if not rows or not secret or len(secret) > 128:
            raise AuthenticationError("invalid API key; send Authorization: Bearer <key>")
        owner, role, salt, stored, created, expires, revoked, caps = rows[0]
        if not hmac.compare_digest(_hash(secret, bytes(salt)), bytes(stored)):
            raise AuthenticationError("invalid API key; send Authorization: Bearer <key>")
        info = KeyInfo(key_id, owner, Role(role), created, expires, revoked, _caps(caps))
        if not info.active:
            raise AuthenticationError(f"API key {key_id} was revoked or has expired")
        with self._lock:
            self._verified[fingerprint] = (info, time.monotonic() + CACHE_S)
        if self.on_login is not None:
            self.on_login(info)
        return info
