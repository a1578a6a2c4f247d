"""Agent memory and the derived-data cache in one shard's database.

Core memory is a small table of labelled blocks per scope (one agent's memory); recall and
archival entries are rows of memory_entries with, when embedded, a row of the vector table of
their embedding's size (sqlite-vec or pgvector), found by the entry's key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from llmasos.storage.database import Database, Transaction, VectorRow, chunks, placeholders
from llmasos.storage.file_store import VERSION_OVERHEAD_BYTES as OVERHEAD
from llmasos.storage.file_store import charge
from llmasos.storage.records import MemoryEntry

_ENTRY = "key, owner, scope, kind, seq, role, text, created_at"


def _entry(row: Sequence[Any]) -> MemoryEntry:
    key, owner, scope, kind, seq, role, text, created = row
    return MemoryEntry(
        int(key), str(owner), str(scope), str(kind), int(seq), str(role), bytes(text),
        float(created),
    )  # fmt: skip


class MemoryStore:
    """The memory tables of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._vector_tables: dict[int, str] = {}

    def set_core(
        self, owner: str, scope: str, label: str, value: bytes, quota_bytes: int | None = None
    ) -> None:
        with self.db.transaction() as tx:
            old = tx.execute(
                "SELECT length(value) FROM memory_core WHERE scope = ? AND label = ?",
                (scope, label),
            )
            charge(tx, owner, len(value) - (int(old[0][0]) if old else -OVERHEAD), quota_bytes)
            tx.execute(
                "INSERT INTO memory_core (owner, scope, label, value, updated_at) VALUES "
                "(?, ?, ?, ?, ?) ON CONFLICT (scope, label) DO UPDATE SET value = "
                "excluded.value, updated_at = excluded.updated_at",
                (owner, scope, label, value, time.time()),
            )

    def delete_core(self, owner: str, scope: str, label: str) -> bool:
        with self.db.transaction() as tx:
            rows = tx.execute(
                "DELETE FROM memory_core WHERE scope = ? AND label = ? RETURNING length(value)",
                (scope, label),
            )
            if rows:
                charge(tx, owner, -(int(rows[0][0]) + OVERHEAD), None)
        return bool(rows)

    def core(self, scope: str) -> dict[str, bytes]:
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT label, value FROM memory_core WHERE scope = ? ORDER BY label", (scope,)
            )
        return {label: bytes(value) for label, value in rows}

    def add_entries(
        self,
        entries: Sequence[MemoryEntry],
        embeddings: Sequence[Any] | None = None,
        quota_bytes: int | None = None,
    ) -> list[int]:
        """Store entries (their seq numbers follow the scope's last one); with embeddings (one
        per entry), index them for search. They count against their owner's quota. The seq
        numbers given."""
        table = self._vector_table(len(embeddings[0])) if embeddings else None
        with self.db.transaction() as tx:
            for owner in {e.owner for e in entries}:
                size = sum(len(e.text) + OVERHEAD for e in entries if e.owner == owner)
                charge(tx, owner, size, quota_bytes)
            numbers = self._next_seqs(tx, entries)
            tx.execute_many(
                "INSERT INTO memory_entries (key, owner, scope, kind, seq, role, text, "
                "created_at, vector_table) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(e.key, e.owner, e.scope, e.kind, seq, e.role, e.text, e.created_at, table)
                 for e, seq in zip(entries, numbers, strict=True)],
            )  # fmt: skip
            if table is not None and embeddings is not None:
                rows = [
                    VectorRow(e.key, vector_scope(e.scope, e.kind), seq, vector)
                    for e, seq, vector in zip(entries, numbers, embeddings, strict=True)
                ]
                self.db.add_vectors(tx, table, rows)
        return numbers

    def _next_seqs(self, tx: Transaction, entries: Sequence[MemoryEntry]) -> list[int]:
        """Seq numbers for the entries, after each scope's last (PostgreSQL runs READ
        COMMITTED: an advisory lock makes appenders to one scope take turns)."""
        numbers, next_seq = [], {}
        for entry in entries:
            group = (entry.scope, entry.kind)
            if group not in next_seq:
                if self.db.dialect == "postgres":
                    tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", ["\x1f".join(group)])
                rows = tx.execute(
                    "SELECT coalesce(max(seq), 0) FROM memory_entries WHERE scope = ? AND kind = ?",
                    group,
                )
                next_seq[group] = int(rows[0][0]) + 1
            numbers.append(next_seq[group])
            next_seq[group] += 1
        return numbers

    def entries(
        self, scope: str, kind: str, *, first_seq: int = 1, limit: int | None = None
    ) -> list[MemoryEntry]:
        """A scope's entries of one kind from seq `first_seq`, in order."""
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {_ENTRY} FROM memory_entries WHERE scope = ? AND kind = ? AND seq >= ? "
                "ORDER BY seq LIMIT ?",
                (scope, kind, first_seq, limit if limit is not None else 2**62),
            )
        return [_entry(row) for row in rows]

    def count(self, scope: str, kind: str) -> int:
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT count(*) FROM memory_entries WHERE scope = ? AND kind = ?", (scope, kind)
            )
        return int(rows[0][0])

    def search(
        self, scope: str, kind: str, query: Any, k: int, max_seq: int | None = None
    ) -> list[tuple[MemoryEntry, float]]:
        """The k entries (with seq <= max_seq) nearest to `query` (cosine distance), nearest
        first."""
        table = self._vector_table(len(query))
        hits = self.db.search_vectors(table, vector_scope(scope, kind), query, k, max_seq)
        if not hits:
            return []
        distance = dict(hits)
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {_ENTRY} FROM memory_entries WHERE key IN ({placeholders(len(hits))})",
                [key for key, _ in hits],
            )
        found = [_entry(row) for row in rows]
        return sorted(((e, distance[e.key]) for e in found), key=lambda pair: pair[1])

    def forget(self, owner: str, scope: str, kind: str, keys: Sequence[int]) -> int:
        """Delete these entries of the scope (and their vectors), refunding their bytes; how
        many there were."""
        with self.db.transaction() as tx:
            gone = freed = 0
            for part in chunks(list(keys)):
                rows = tx.execute(
                    f"DELETE FROM memory_entries WHERE scope = ? AND kind = ? AND key IN "
                    f"({placeholders(len(part))}) RETURNING key, vector_table, length(text)",
                    [scope, kind, *part],
                )
                gone += len(rows)
                freed += sum(int(size) + OVERHEAD for _, _, size in rows)
                for table in {t for _, t, _ in rows if t}:
                    self.db.delete_vectors(tx, table, [k for k, t, _ in rows if t == table])
            charge(tx, owner, -freed, None)
        return gone

    def _vector_table(self, dimensions: int) -> str:
        if dimensions not in self._vector_tables:
            self._vector_tables[dimensions] = self.db.ensure_vectors(dimensions)
        return self._vector_tables[dimensions]

    # -- the derived-data cache (content-addressed, shared by every owner) -----------------

    def derived(self, key: str) -> bytes | None:
        with self.db.transaction(write=False) as tx:
            rows = tx.execute("SELECT value FROM derived WHERE key = ?", (key,))
        return bytes(rows[0][0]) if rows else None

    def put_derived(self, key: str, kind: str, value: bytes) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO derived (key, kind, value, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, kind, value, time.time()),
            )


def vector_scope(scope: str, kind: str) -> str:
    """The partition a scope's entries of one kind are searched in."""
    return f"{scope}\x1f{kind}"
