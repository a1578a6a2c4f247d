"""The file system of processes and users: versioned files in namespaces, with grants.

    view = FileSystem(store, sealer=None, quota_bytes=...).view(Principal("alice"))
    v = view.write("notes/a.txt", b"hello")            # 1
    view.write("notes/a.txt", b"hello!", expected_version=v)   # 2, or ConflictError
    view.read("notes/a.txt", version=1); view.history("notes/a.txt"); view.rollback(..., 1)
    view.grant("notes", "bob", "read")                 # bob reads ~alice/notes/...

Every write is a new version (a delete is one too, so it can be rolled back); a write always
compares and swaps against the version it read, so an update is never lost silently.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from llmasos.errors import (
    ConflictError,
    FileNotFoundInStoreError,
    IntegrityError,
    InvalidRequestError,
    PathExistsError,
    PermissionDeniedError,
)
from llmasos.security.crypto import Sealer
from llmasos.storage.paths import Location, Principal, is_under, locate
from llmasos.storage.records import Grant, GrantMode, NewVersion, StoredVersion, VersionInfo
from llmasos.storage.sharding import ShardedStore

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DIFF_BYTES = 1024 * 1024  # difflib's time grows with the product of the line counts


@dataclass(frozen=True)
class FileInfo:
    """A version of a file as its caller names it."""

    path: str
    version: int
    size: int
    digest: str  # sha256 of the content (a keyed digest when encryption is on)
    deleted: bool
    modified_at: float
    author: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileInfo:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


class FileSystem:
    """The service: one store, optional sealing, a quota per owner (bytes, history counts)."""

    def __init__(
        self, store: ShardedStore, *, sealer: Sealer | None = None, quota_bytes: int | None = None
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.quota_bytes = quota_bytes

    def view(self, principal: Principal, limit: PathLimit | None = None) -> FileSystemView:
        return FileSystemView(self, principal, limit)


# Called with a location and whether the call writes; raises to refuse (a capability check).
PathLimit = Callable[[Location, bool], None]


def _bound(loc: Location, version: int) -> bytes:
    return f"file\x00{loc.namespace}\x00{loc.path}\x00{version}".encode()


class FileSystemView:
    """The file system as one principal sees it (the object behind client.fs and ctx.fs)."""

    def __init__(
        self, fs: FileSystem, principal: Principal, limit: PathLimit | None = None
    ) -> None:
        self._fs = fs
        self.principal = principal
        self._limit = limit  # the acting agent's capabilities: they only narrow

    # -- access --------------------------------------------------------------------------

    def _owns(self, loc: Location) -> bool:
        me = self.principal
        return loc.namespace == me.name or (me.agent is None and loc.owner == me.owner)

    def _limited(self, loc: Location, *, write: bool) -> None:
        """The acting agent's (or key's) capabilities: every method passes here first."""
        if self._limit is not None:
            self._limit(loc, write)

    def _check(self, loc: Location, mode: GrantMode, field: str = "path") -> None:
        self._limited(loc, write=mode is GrantMode.WRITE)
        if self._owns(loc):
            return
        with self._fs.store.routed(loc.owner) as shard:
            grants = shard.files.grants(loc.namespace)
        names = {self.principal.name, self.principal.owner}
        for grant in grants:
            allows = mode is GrantMode.READ or grant.mode is GrantMode.WRITE
            if grant.grantee in names and is_under(loc.path, grant.prefix) and allows:
                return
        raise PermissionDeniedError(
            f"{field}: {self.principal.name} has no {mode.value} grant on "
            f"~{loc.namespace}/{loc.path}"
        )

    def _locate(self, path: str, mode: GrantMode, field: str = "path") -> Location:
        loc = locate(self.principal, path, field)
        self._check(loc, mode, field)
        return loc

    # -- contents ------------------------------------------------------------------------

    def write(self, path: str, data: bytes | str, expected_version: int | None = None) -> int:
        """Store `data` as the path's next version; its number. With expected_version (0 for a
        path that must be new) the write fails with ConflictError unless that is the latest."""
        if isinstance(data, str):
            data = data.encode()
        if not isinstance(data, bytes | bytearray):
            raise InvalidRequestError("data", "must be bytes or a string")
        if len(data) > MAX_FILE_BYTES:
            raise InvalidRequestError("data", f"must be at most {MAX_FILE_BYTES} bytes")
        if expected_version is not None and (
            not isinstance(expected_version, int) or expected_version < 0
        ):
            raise InvalidRequestError("expected_version", "must be an integer >= 0")
        loc = self._locate(path, GrantMode.WRITE)
        return self._commit_one(loc, bytes(data), expected_version, deleted=False)

    def _commit_one(
        self, loc: Location, data: bytes, expected: int | None, *, deleted: bool
    ) -> int:
        """Commit against the head just read. Without `expected`, a writer that lost the race
        reads the new head and tries again (each loss means another write committed)."""
        for attempt in itertools.count():
            with self._fs.store.routed(loc.owner) as shard:
                if expected is None and self._fs.sealer is not None:
                    head = shard.files.head(loc.namespace, loc.path)  # sealing binds the version
                    base: int | None = head.version if head else 0
                else:  # the commit checks `expected` (or takes the head) in its transaction
                    base = expected
                new = self._new_version(loc, data, base, deleted=deleted)
                try:
                    return shard.files.commit([new], self._fs.quota_bytes)[0]
                except ConflictError:
                    if expected is not None:
                        raise
            time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))  # back off, jittered
        raise AssertionError("unreachable")

    def _new_version(
        self, loc: Location, data: bytes, base: int | None, *, deleted: bool
    ) -> NewVersion:
        """The version after `base` (None: after whatever the head is at commit time, which
        only an unsealed write may leave open)."""
        sealer = self._fs.sealer
        if sealer is None:
            stored, digest = data, hashlib.sha256(data).hexdigest()
        else:
            assert base is not None
            stored = sealer.seal(loc.owner, _bound(loc, base + 1), data)
            digest = sealer.digest(loc.owner, data)
        return NewVersion(
            loc.owner, loc.namespace, loc.path, stored, len(data), digest, self.principal.name,
            deleted=deleted, expected_version=base,
        )  # fmt: skip

    def read(self, path: str, version: int | None = None) -> bytes:
        """The latest content (or that version's); FileNotFoundInStoreError when there is none
        or it was deleted."""
        return self.read_with_info(path, version)[0]

    def read_with_info(self, path: str, version: int | None = None) -> tuple[bytes, FileInfo]:
        """read()'s content with the version's metadata."""
        loc = self._locate(path, GrantMode.READ)
        stored = self._stored(loc, version)
        return self._open(loc, stored), self._info(loc, stored.info)

    def _stored(self, loc: Location, version: int | None) -> StoredVersion:
        if version is not None and (not isinstance(version, int) or version < 1):
            raise InvalidRequestError("version", "must be an integer >= 1")
        with self._fs.store.routed(loc.owner) as shard:
            stored = shard.files.read(loc.namespace, loc.path, version)
        if stored is None or stored.info.deleted:
            raise FileNotFoundInStoreError(loc.shown(self.principal), version)
        return stored

    def _open(self, loc: Location, stored: StoredVersion) -> bytes:
        sealer, version = self._fs.sealer, stored.info.version
        if sealer is not None:
            return sealer.open(loc.owner, _bound(loc, version), stored.data)
        if hashlib.sha256(stored.data).hexdigest() != stored.info.sha256:
            raise IntegrityError(
                f"path: {loc.shown(self.principal)} version {version} does not match its "
                "digest (altered on disk); it was not returned"
            )
        return stored.data

    def delete(self, path: str, expected_version: int | None = None) -> int:
        """Mark the path deleted as a new version (rollback brings it back); that version."""
        loc = self._locate(path, GrantMode.WRITE)
        self._stored(loc, None)
        return self._commit_one(loc, b"", expected_version, deleted=True)

    def purge(self, path: str, expected_version: int | None = None) -> int:
        """Remove the path with its whole history (owner only); the bytes freed. With
        expected_version, only if that is still the latest (else ConflictError)."""
        loc = locate(self.principal, path)
        self._limited(loc, write=True)
        if not self._owns(loc):
            raise PermissionDeniedError(f"path: only the owner of ~{loc.namespace} may purge")
        with self._fs.store.routed(loc.owner) as shard:
            return shard.files.purge(loc.owner, loc.namespace, loc.path, expected_version)

    def move(self, source: str, destination: str) -> int:
        """Rename within one owner's namespaces, atomically; the destination's version."""
        src = self._locate(source, GrantMode.WRITE, "source")
        dst = self._locate(destination, GrantMode.WRITE, "destination")
        if src.owner != dst.owner:
            raise InvalidRequestError("destination", "must belong to the source's owner")
        stored = self._stored(src, None)
        data = self._open(src, stored)
        with self._fs.store.routed(src.owner) as shard:
            head = shard.files.head(dst.namespace, dst.path)
            if head is not None and not head.deleted:
                raise PathExistsError("destination", dst.shown(self.principal), head.version)
            target = self._new_version(dst, data, head.version if head else 0, deleted=False)
            tomb = self._new_version(src, b"", stored.info.version, deleted=True)
            return shard.files.commit([target, tomb], self._fs.quota_bytes)[0]

    def rollback(self, path: str, version: int) -> int:
        """Write version `version`'s content as the newest version; its number."""
        loc = self._locate(path, GrantMode.WRITE)
        data = self._open(loc, self._stored(loc, version))
        with self._fs.store.routed(loc.owner) as shard:
            head = shard.files.head(loc.namespace, loc.path)
        return self._commit_one(loc, data, head.version if head else 0, deleted=False)

    # -- metadata ------------------------------------------------------------------------

    def _info(self, loc: Location, info: VersionInfo) -> FileInfo:
        shown = Location(loc.namespace, loc.owner, info.path).shown(self.principal)
        return FileInfo(
            shown, info.version, info.size, info.sha256, info.deleted, info.created_at,
            info.author,
        )  # fmt: skip

    def stat(self, path: str) -> FileInfo:
        loc = self._locate(path, GrantMode.READ)
        with self._fs.store.routed(loc.owner) as shard:
            head = shard.files.head(loc.namespace, loc.path)
        if head is None or head.deleted:
            raise FileNotFoundInStoreError(loc.shown(self.principal))
        return self._info(loc, head)

    def history(self, path: str) -> list[FileInfo]:
        """Every version, oldest first (deletions included, marked deleted)."""
        loc = self._locate(path, GrantMode.READ)
        with self._fs.store.routed(loc.owner) as shard:
            versions = shard.files.history(loc.namespace, loc.path)
        if not versions:
            raise FileNotFoundInStoreError(loc.shown(self.principal))
        return [self._info(loc, v) for v in versions]

    def list(self, prefix: str = "") -> list[FileInfo]:
        """The live files at or under the folder `prefix` that the caller may read."""
        loc = locate(self.principal, prefix, "prefix", allow_root=True)
        self._limited(loc, write=False)
        with self._fs.store.routed(loc.owner) as shard:
            heads = shard.files.list(loc.namespace, loc.path)
            grants = [] if self._owns(loc) else shard.files.grants(loc.namespace)
        if not self._owns(loc):
            names = {self.principal.name, self.principal.owner}
            mine = [g.prefix for g in grants if g.grantee in names]
            if not mine:
                raise PermissionDeniedError(
                    f"prefix: {self.principal.name} has no grant in ~{loc.namespace}"
                )
            heads = [h for h in heads if any(is_under(h.path, p) for p in mine)]
        return [self._info(loc, head) for head in heads]

    def diff(self, path: str, from_version: int, to_version: int | None = None) -> str:
        """A unified diff between two versions (to_version: the latest)."""
        loc = self._locate(path, GrantMode.READ)
        old_stored, new_stored = self._stored(loc, from_version), self._stored(loc, to_version)
        for stored in (old_stored, new_stored):
            if stored.info.size > MAX_DIFF_BYTES:
                raise InvalidRequestError(
                    "path", f"version {stored.info.version} has {stored.info.size} bytes; "
                    f"diff compares versions of at most {MAX_DIFF_BYTES} bytes",
                )  # fmt: skip
        old, new = self._open(loc, old_stored), self._open(loc, new_stored)
        name = loc.shown(self.principal)
        try:
            a, b = old.decode(), new.decode()
        except UnicodeDecodeError:
            same = "are the same" if old == new else "differ"
            return f"Binary versions {from_version} and {new_stored.info.version} {same}\n"
        lines = difflib.unified_diff(
            a.splitlines(keepends=True), b.splitlines(keepends=True),
            f"{name}@{from_version}", f"{name}@{new_stored.info.version}",
        )  # fmt: skip
        return "".join(lines)

    def usage(self) -> int:
        """Bytes the caller's owner stores (every version counts)."""
        with self._fs.store.routed(self.principal.owner) as shard:
            return shard.files.usage(self.principal.owner)

    # -- grants --------------------------------------------------------------------------

    def _own_folder(self, prefix: str, *, write: bool = True) -> Location:
        """A folder of the caller's own (granting in it changes who may reach it: a write)."""
        loc = locate(self.principal, prefix, "prefix", allow_root=True)
        self._limited(loc, write=write)
        if not self._owns(loc):
            raise PermissionDeniedError(f"prefix: only the owner of ~{loc.namespace} may grant")
        return loc

    def grant(self, prefix: str, to: str, mode: str = "read") -> Grant:
        """Let principal `to` (an owner, or owner:agent) read or write under `prefix`."""
        loc = self._own_folder(prefix)
        try:
            grant_mode = GrantMode(mode)
        except ValueError:
            raise InvalidRequestError("mode", "must be 'read' or 'write'") from None
        grantee = Principal.parse(to).name
        grant = Grant(loc.namespace, loc.path, grantee, grant_mode, time.time())
        with self._fs.store.routed(loc.owner) as shard:
            shard.files.put_grant(loc.owner, grant)
        return grant

    def revoke(self, prefix: str, to: str) -> bool:
        """Withdraw a grant; whether there was one."""
        loc = self._own_folder(prefix)
        grantee = Principal.parse(to).name
        with self._fs.store.routed(loc.owner) as shard:
            return shard.files.delete_grant(loc.namespace, loc.path, grantee)

    def grants(self, prefix: str = "") -> list[Grant]:
        """The grants on the caller's namespace (or one it owns) at or under `prefix`."""
        loc = self._own_folder(prefix, write=False)
        with self._fs.store.routed(loc.owner) as shard:
            found = shard.files.grants(loc.namespace)
        return [g for g in found if is_under(g.prefix, loc.path)]


__all__ = ["MAX_FILE_BYTES", "FileInfo", "FileSystem", "FileSystemView"]
