"""Owners hash-partitioned across shards, and rebalancing onto a new shard.

An owner's files, grants and memory (its agents' too) live in one shard, chosen by rendezvous
hashing of (shard name, owner): adding a shard moves only the owners that now hash to it, about
1/N of them. Rebalancing copies an owner's rows into its new shard in one transaction and then
deletes them from the old one in another; a crash between the two leaves copies in both, and
running it again finishes the move (the copy skips rows already there). A rebalance marks the
catalog while it runs, and opening the storage finishes a marked one before anything else, so
no write lands in a shard its owner has not finished moving to. Operations wait while a
rebalance runs in this process; run it with no other server writing to the same databases.

The catalog (the shard names, in order) is kept in the first shard's meta table.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from llmasos.storage.database import Database, chunks, placeholders
from llmasos.storage.file_store import FileStore
from llmasos.storage.memory_store import MemoryStore
from llmasos.storage.schema import OWNER_TABLES, migrate


@dataclass
class Shard:
    db: Database
    files: FileStore = field(init=False)
    memory: MemoryStore = field(init=False)

    def __post_init__(self) -> None:
        migrate(self.db)
        self.files = FileStore(self.db)
        self.memory = MemoryStore(self.db)


@dataclass(frozen=True)
class RebalanceReport:
    shards: int
    owners_moved: int
    rows_moved: int


def shard_score(shard_name: str, owner: str) -> int:
    digest = hashlib.blake2b(f"{shard_name}\x00{owner}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class ShardedStore:
    """The shards of one storage service, routing every operation by owner."""

    def __init__(self, databases: list[Database]) -> None:
        if not databases:
            raise ValueError("databases: a store needs at least one shard")
        self.shards = [Shard(db) for db in databases]
        self._busy = threading.Condition()
        self._active = 0
        self._rebalancing = False

    @property
    def catalog(self) -> Shard:
        return self.shards[0]

    def shard_for(self, owner: str) -> Shard:
        if len(self.shards) == 1:
            return self.shards[0]
        return max(self.shards, key=lambda s: shard_score(s.db.name, owner))

    @contextmanager
    def routed(self, owner: str) -> Iterator[Shard]:
        """The owner's shard, held so that no rebalance moves it meanwhile."""
        with self._busy:
            while self._rebalancing:
                self._busy.wait()
            self._active += 1
        try:
            yield self.shard_for(owner)
        finally:
            with self._busy:
                self._active -= 1
                self._busy.notify_all()

    def shard_names(self) -> list[str]:
        return [shard.db.name for shard in self.shards]

    def _meta(self, key: str) -> str | None:
        with self.catalog.db.transaction(write=False) as tx:
            rows = tx.execute("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def _set_meta(self, key: str, value: str | None) -> None:
        with self.catalog.db.transaction() as tx:
            if value is None:
                tx.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO "
                    "UPDATE SET value = excluded.value",
                    (key, value),
                )

    def saved_catalog(self) -> list[str]:
        saved = self._meta("shards")
        return json.loads(saved) if saved else []

    def save_catalog(self) -> None:
        self._set_meta("shards", json.dumps(self.shard_names()))

    @property
    def rebalance_pending(self) -> bool:
        """A rebalance began and did not finish (the process died): finish it before use."""
        return self._meta("rebalancing") is not None

    def add_shard(self, db: Database) -> RebalanceReport:
        """Add a shard and move to it the owners that now hash there. No operation runs
        meanwhile, and a crash before the end leaves a mark that the next open acts on."""
        with self._exclusive():
            self._set_meta("rebalancing", "1")
            self.shards.append(Shard(db))
            self.save_catalog()
            return self._rebalance()

    def rebalance(self) -> RebalanceReport:
        """Move every owner that sits outside its shard into it; nothing is lost on the way."""
        with self._exclusive():
            return self._rebalance()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._busy:
            while self._rebalancing:
                self._busy.wait()
            self._rebalancing = True  # new operations wait from here
            while self._active:
                self._busy.wait()
        try:
            yield
        finally:
            with self._busy:
                self._rebalancing = False
                self._busy.notify_all()

    def _rebalance(self) -> RebalanceReport:
        self._set_meta("rebalancing", "1")
        owners = rows = 0
        for shard in self.shards:
            for owner in sorted(owners_in(shard.db)):
                target = self.shard_for(owner)
                if target is not shard:
                    rows += move_owner(owner, shard.db, target.db)
                    owners += 1
        self._set_meta("rebalancing", None)
        return RebalanceReport(len(self.shards), owners, rows)

    def close(self) -> None:
        for shard in self.shards:
            shard.db.close()


def owners_in(db: Database) -> set[str]:
    with db.transaction(write=False) as tx:
        found: set[str] = set()
        for table in OWNER_TABLES:
            found |= {owner for (owner,) in tx.execute(f"SELECT DISTINCT owner FROM {table}")}
    return found


def move_owner(owner: str, source: Database, target: Database) -> int:
    """Copy the owner's rows (and vectors) into `target`, then delete them from `source`;
    how many rows moved."""
    with source.transaction(write=False) as tx:
        rows = {
            table: tx.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE owner = ?", (owner,))
            for table, cols in OWNER_TABLES.items()
        }
        keys_by_table: dict[str, list[int]] = {}
        for key, *_, vector_table in rows["memory_entries"]:
            if vector_table:
                keys_by_table.setdefault(vector_table, []).append(int(key))
        vectors = {t: source.read_vectors(tx, t, keys) for t, keys in keys_by_table.items()}
    with target.transaction() as tx:
        for table, cols in OWNER_TABLES.items():
            if rows[table]:
                tx.execute_many(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                    f"({placeholders(len(cols))}) ON CONFLICT DO NOTHING",
                    [tuple(row) for row in rows[table]],
                )
    for table, found in vectors.items():
        dimensions = int(table.rsplit("_", 1)[1])
        target.ensure_vectors(dimensions)
        with target.transaction() as tx:
            target.delete_vectors(tx, table, [row.key for row in found])
            target.add_vectors(tx, table, found)
    with source.transaction() as tx:
        for table, keys in keys_by_table.items():
            for part in chunks(keys):
                source.delete_vectors(tx, table, part)
        for table in OWNER_TABLES:
            tx.execute(f"DELETE FROM {table} WHERE owner = ?", (owner,))
    return sum(len(found) for found in rows.values())
