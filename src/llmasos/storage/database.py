"""The one thing the two storage backends differ in: how a transaction reaches the database.

SqlStore writes its SQL once, with `?` placeholders; each Database runs it in its dialect and
turns a duplicate key into DuplicateKey, so compare-and-swap reads the same on both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol

Row = tuple[Any, ...]
VECTOR_TABLE_PREFIX = "memory_vec_"


class VectorRow(NamedTuple):
    """An embedding of a memory entry: its key, search partition and seq number."""

    key: int
    scope: str
    seq: int
    vector: Any  # float32 array


def vector_table(dimensions: int) -> str:
    """The vector table of embeddings of this size."""
    return f"{VECTOR_TABLE_PREFIX}{dimensions}"


class DuplicateKey(Exception):
    """A row with that primary key exists (another writer committed first)."""


class Transaction(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; the rows it returns (none for most writes)."""
        ...

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


class Database(Protocol):
    """One shard's database: SQLite file or PostgreSQL schema."""

    dialect: str  # "sqlite" | "postgres"
    name: str  # the shard's name in the catalog

    def transaction(self, *, write: bool = True) -> AbstractContextManager[Transaction]:
        """Commit on success, roll back on any exception; DuplicateKey for a taken key."""
        ...

    def ensure_vectors(self, dimensions: int) -> str:
        """Create (once) the vector table for embeddings of this many dimensions; its name."""
        ...

    def add_vectors(self, tx: Transaction, table: str, rows: Sequence[VectorRow]) -> None: ...

    def search_vectors(
        self, table: str, scope: str, query: Any, k: int, max_seq: int | None = None
    ) -> list[tuple[int, float]]:
        """The k nearest (entry key, cosine distance) in `scope` (with seq <= max_seq),
        nearest first."""
        ...

    def delete_vectors(self, tx: Transaction, table: str, keys: Sequence[int]) -> None: ...

    def read_vectors(self, tx: Transaction, table: str, keys: Sequence[int]) -> list[VectorRow]:
        """The rows of these keys, for moving them."""
        ...

    def vector_tables(self) -> list[tuple[str, int]]:
        """(table, dimensions) of every vector table this database has."""
        ...

    def close(self) -> None: ...


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
