"""Versioned files, grants and usage in one shard's database (SQL written once, both dialects).

Every write inserts a new row into file_versions and moves the path's head; the version a
writer expected is checked against the head inside the transaction, and the primary key
(namespace, path, version) refuses the second of two writers that raced past that check, so
two writers from the same version never both succeed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from llmasos.errors import ConflictError, StorageQuotaError
from llmasos.storage.database import Database, DuplicateKey, Transaction
from llmasos.storage.records import Grant, GrantMode, NewVersion, StoredVersion, VersionInfo

_INFO = "namespace, path, version, size, sha256, deleted, created_at, author"
_HEAD = "namespace, path, version, size, sha256, deleted, modified_at, author"
_JOINED_INFO = ", ".join(f"v.{name.strip()}" for name in _INFO.split(","))
_UNDER = "(? = '' OR path = ? OR substr(path, 1, length(?) + 1) = ? || '/')"


def _info(row: Sequence[object]) -> VersionInfo:
    ns, path, version, size, sha, deleted, created, author = row
    return VersionInfo(
        str(ns), str(path), int(version), int(size), str(sha), bool(deleted), float(created),
        str(author),
    )  # fmt: skip


VERSION_OVERHEAD_BYTES = 256  # what a version costs beyond its content (path, metadata, index)


def charged(size: int) -> int:
    """The bytes a version of `size` content bytes counts against its owner's quota."""
    return size + VERSION_OVERHEAD_BYTES


def charge(tx: Transaction, owner: str, size: int, quota_bytes: int | None) -> None:
    """Add `size` bytes to the owner's usage; StorageQuotaError (the transaction rolls back)
    past the quota. A refund (negative size) always passes."""
    (used,) = tx.execute(
        "INSERT INTO owner_usage (owner, bytes) VALUES (?, ?) ON CONFLICT (owner) "
        "DO UPDATE SET bytes = owner_usage.bytes + excluded.bytes RETURNING bytes",
        (owner, size),
    )[0]
    if quota_bytes is not None and size > 0 and used > quota_bytes:
        raise StorageQuotaError(owner, used - size, size, quota_bytes)


class FileStore:
    """The file tables of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def commit(self, versions: Sequence[NewVersion], quota_bytes: int | None) -> list[int]:
        """Write all of `versions` or none; each one's new version number."""
        with self.db.transaction() as tx:
            numbers = [self._append(tx, version) for version in versions]
            added: dict[str, int] = {}
            for version in versions:
                added[version.owner] = added.get(version.owner, 0) + charged(version.size)
            for owner, size in added.items():
                charge(tx, owner, size, quota_bytes)
        return numbers

    def _append(self, tx: Transaction, new: NewVersion) -> int:
        head = tx.execute(
            "SELECT version FROM file_heads WHERE namespace = ? AND path = ?",
            (new.namespace, new.path),
        )
        current = int(head[0][0]) if head else 0
        if new.expected_version is not None and new.expected_version != current:
            raise ConflictError(new.path, new.expected_version, current)
        number, now = current + 1, time.time()
        try:
            tx.execute(
                "INSERT INTO file_versions (owner, namespace, path, version, size, sha256, "
                "deleted, created_at, author, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (new.owner, new.namespace, new.path, number, new.size, new.sha256,
                 int(new.deleted), now, new.author, new.data),
            )  # fmt: skip
        except DuplicateKey:  # another writer took this version since we read the head
            raise ConflictError(new.path, current, number) from None
        tx.execute(
            "INSERT INTO file_heads (owner, namespace, path, version, size, sha256, deleted, "
            "modified_at, author) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, "
            "path) DO UPDATE SET version = excluded.version, size = excluded.size, sha256 = "
            "excluded.sha256, deleted = excluded.deleted, modified_at = excluded.modified_at, "
            "author = excluded.author",
            (new.owner, new.namespace, new.path, number, new.size, new.sha256,
             int(new.deleted), now, new.author),
        )  # fmt: skip
        return number

    def read(self, namespace: str, path: str, version: int | None = None) -> StoredVersion | None:
        """That version (default: the head, deleted or not), or None."""
        with self.db.transaction(write=False) as tx:
            if version is None:  # one statement: the head's version row
                rows = tx.execute(
                    f"SELECT {_JOINED_INFO}, v.data FROM file_heads h JOIN file_versions v ON "
                    "v.namespace = h.namespace AND v.path = h.path AND v.version = h.version "
                    "WHERE h.namespace = ? AND h.path = ?",
                    (namespace, path),
                )
            else:
                rows = tx.execute(
                    f"SELECT {_INFO}, data FROM file_versions WHERE namespace = ? AND path = ? "
                    "AND version = ?",
                    (namespace, path, version),
                )
        return StoredVersion(_info(rows[0][:-1]), bytes(rows[0][-1])) if rows else None

    def head(self, namespace: str, path: str) -> VersionInfo | None:
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {_HEAD} FROM file_heads WHERE namespace = ? AND path = ?",
                (namespace, path),
            )
        return _info(rows[0]) if rows else None

    def history(self, namespace: str, path: str) -> list[VersionInfo]:
        """Every version of the path, oldest first (deletions included)."""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {_INFO} FROM file_versions WHERE namespace = ? AND path = ? "
                "ORDER BY version",
                (namespace, path),
            )
        return [_info(row) for row in rows]

    def list(self, namespace: str, prefix: str = "") -> list[VersionInfo]:
        """The live files at or under `prefix` (a folder path, no trailing slash), by path."""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {_HEAD} FROM file_heads WHERE namespace = ? AND deleted = 0 AND "
                f"{_UNDER} ORDER BY path",
                (namespace, prefix, prefix, prefix, prefix),
            )
        return [_info(row) for row in rows]

    def purge(self, owner: str, namespace: str, path: str, expected: int | None = None) -> int:
        """Remove the path's whole history; the bytes freed. The head stays, marked deleted,
        so version numbers never repeat (a sealed record of a purged version can never pass
        for a new one). The head is locked first: a writer racing the purge either commits
        before it (and is purged) or after it (and is the path's one version)."""
        with self.db.transaction() as tx:
            head = tx.execute(
                "UPDATE file_heads SET deleted = 1, size = 0 WHERE namespace = ? AND path = ? "
                "RETURNING version",
                (namespace, path),
            )
            current = int(head[0][0]) if head else 0
            if expected is not None and expected != current:
                raise ConflictError(path, expected, current)
            sizes = tx.execute(
                "DELETE FROM file_versions WHERE namespace = ? AND path = ? RETURNING size",
                (namespace, path),
            )
            freed = sum(charged(int(size)) for (size,) in sizes)
            tx.execute("UPDATE owner_usage SET bytes = bytes - ? WHERE owner = ?", (freed, owner))
        return freed

    def usage(self, owner: str) -> int:
        with self.db.transaction(write=False) as tx:
            rows = tx.execute("SELECT bytes FROM owner_usage WHERE owner = ?", (owner,))
        return int(rows[0][0]) if rows else 0

    # -- grants --------------------------------------------------------------------------

    def put_grant(self, owner: str, grant: Grant) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO grants (owner, namespace, prefix, grantee, mode, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, prefix, grantee) DO UPDATE "
                "SET mode = excluded.mode, created_at = excluded.created_at",
                (owner, grant.namespace, grant.prefix, grant.grantee, grant.mode.value,
                 grant.created_at),
            )  # fmt: skip

    def delete_grant(self, namespace: str, prefix: str, grantee: str) -> bool:
        with self.db.transaction() as tx:
            rows = tx.execute(
                "DELETE FROM grants WHERE namespace = ? AND prefix = ? AND grantee = ? "
                "RETURNING prefix",
                (namespace, prefix, grantee),
            )
        return bool(rows)

    def grants(self, namespace: str) -> list[Grant]:
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT namespace, prefix, grantee, mode, created_at FROM grants WHERE "
                "namespace = ? ORDER BY prefix, grantee",
                (namespace,),
            )
        return [
            Grant(ns, prefix, to, GrantMode(mode), float(at)) for ns, prefix, to, mode, at in rows
        ]
