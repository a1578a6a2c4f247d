"""What crosses the storage protocol: small frozen dataclasses and one enum."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class GrantMode(enum.Enum):
    READ = "read"
    WRITE = "write"  # implies read


@dataclass(frozen=True)
class NewVersion:
    """One version to commit. `data` is what the database stores (sealed when encryption is
    on); `size` and `sha256` describe the plaintext."""

    owner: str
    namespace: str
    path: str
    data: bytes
    size: int
    sha256: str
    author: str
    deleted: bool = False
    expected_version: int | None = None  # None: whatever is there; 0: the path must be new


@dataclass(frozen=True)
class VersionInfo:
    """A version's metadata (the head's, for list and stat)."""

    namespace: str
    path: str
    version: int
    size: int
    sha256: str
    deleted: bool
    created_at: float
    author: str


@dataclass(frozen=True)
class StoredVersion:
    info: VersionInfo
    data: bytes


@dataclass(frozen=True)
class Grant:
    namespace: str
    prefix: str
    grantee: str
    mode: GrantMode
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "prefix": self.prefix, "to": self.grantee,
            "mode": self.mode.value, "created_at": self.created_at,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Grant:
        return cls(
            data["namespace"], data["prefix"], data["to"], GrantMode(data["mode"]),
            data["created_at"],
        )  # fmt: skip


@dataclass(frozen=True)
class MemoryEntry:
    """A recall (conversation) or archival entry of an agent's memory. `text` is as stored
    (sealed when encryption is on)."""

    key: int
    owner: str
    scope: str
    kind: str
    seq: int
    role: str
    text: bytes
    created_at: float
