"""The embedded backend: one SQLite file per shard, WAL journal, synchronous=FULL commits (an
acknowledged write survives a kill -9 or a power cut), sqlite-vec for vector search.

pyenv's and many distributions' Pythons cannot load SQLite extensions, so this module uses
sqlean-py's sqlite3 (the same API, with extension loading) and loads sqlite-vec into it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlean
import sqlite_vec

from llmasos.storage.database import (
    VECTOR_TABLE_PREFIX,
    DuplicateKey,
    Row,
    VectorRow,
    chunks,
    placeholders,
    vector_table,
)

BUSY_TIMEOUT_MS = 30_000


class _SqliteTransaction:
    def __init__(self, connection: sqlean.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return self._connection.execute(sql, params).fetchall()
        except sqlean.IntegrityError as error:
            if "UNIQUE" in str(error) or "PRIMARY KEY" in str(error):
                raise DuplicateKey(str(error)) from error
            raise

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._connection.executemany(sql, rows)
        except sqlean.IntegrityError as error:
            raise DuplicateKey(str(error)) from error


class SqliteDatabase:
    """A shard in one SQLite file; a connection per thread, so readers run beside a writer."""

    dialect = "sqlite"

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlean.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlean.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlean.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30
            )
            connection.enable_load_extension(True)
            sqlite_vec.load(connection)
            connection.enable_load_extension(False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[_SqliteTransaction]:
        """A write transaction takes the write lock at once (BEGIN IMMEDIATE); reads run each
        statement in its own snapshot (autocommit), which is all one-statement reads need."""
        connection = self._connection()
        if not write:
            yield _SqliteTransaction(connection)
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTransaction(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def ensure_vectors(self, dimensions: int) -> str:
        table = vector_table(dimensions)
        with self.transaction() as tx:
            tx.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0(scope TEXT partition "
                f"key, seq INTEGER, embedding float[{dimensions}] distance_metric=cosine)"
            )
        return table

    def add_vectors(self, tx: Any, table: str, rows: Sequence[VectorRow]) -> None:
        tx.execute_many(
            f"INSERT INTO {table} (rowid, scope, seq, embedding) VALUES (?, ?, ?, ?)",
            [(r.key, r.scope, r.seq, _float32(r.vector).tobytes()) for r in rows],
        )

    def search_vectors(
        self, table: str, scope: str, query: Any, k: int, max_seq: int | None = None
    ) -> list[tuple[int, float]]:
        with self.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT rowid, distance FROM {table} WHERE embedding MATCH ? AND k = ? "
                "AND scope = ? AND seq <= ? ORDER BY distance",
                (_float32(query).tobytes(), k, scope, 2**62 if max_seq is None else max_seq),
            )
        return [(int(key), float(distance)) for key, distance in rows]

    def delete_vectors(self, tx: Any, table: str, keys: Sequence[int]) -> None:
        for part in chunks(list(keys)):
            tx.execute(f"DELETE FROM {table} WHERE rowid IN ({placeholders(len(part))})", part)

    def read_vectors(self, tx: Any, table: str, keys: Sequence[int]) -> list[VectorRow]:
        rows: list[VectorRow] = []
        for part in chunks(list(keys)):
            found = tx.execute(
                f"SELECT rowid, scope, seq, embedding FROM {table} WHERE rowid IN "
                f"({placeholders(len(part))})",
                part,
            )
            rows += [
                VectorRow(k, scope, seq, np.frombuffer(blob, dtype=np.float32))
                for k, scope, seq, blob in found
            ]
        return rows

    def vector_tables(self) -> list[tuple[str, int]]:
        with self.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE "
                f"'{VECTOR_TABLE_PREFIX}%' AND sql LIKE 'CREATE VIRTUAL TABLE%'"
            )
        return [(name, int(name.rsplit("_", 1)[1])) for (name,) in rows]

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


def _float32(vector: Any) -> np.ndarray:
    return np.asarray(vector, dtype=np.float32)
