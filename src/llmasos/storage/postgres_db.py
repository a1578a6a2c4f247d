"""The shared backend: PostgreSQL through psycopg 3 and a connection pool, one schema per shard,
pgvector (HNSW, cosine) for vector search. Chosen by LLMASOS_DATABASE_URL=postgresql://...
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool

from llmasos.storage.database import (
    VECTOR_TABLE_PREFIX,
    DuplicateKey,
    Row,
    VectorRow,
    vector_table,
)

POOL_MAX = 8
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _postgres_sql(statement: str) -> str:
    """SqlStore's `?` placeholders as psycopg's `%s` (a literal % doubled first)."""
    return statement.replace("%", "%%").replace("?", "%s")


class _PostgresTransaction:
    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            self._cursor.execute(_postgres_sql(sql), params)
        except psycopg.errors.UniqueViolation as error:
            raise DuplicateKey(str(error)) from error
        return self._cursor.fetchall() if self._cursor.description else []

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self._cursor.executemany(_postgres_sql(sql), rows)
        except psycopg.errors.UniqueViolation as error:
            raise DuplicateKey(str(error)) from error


class PostgresDatabase:
    """A shard in one schema of a PostgreSQL database (created, with pgvector, on open)."""

    dialect = "postgres"

    def __init__(self, url: str, schema: str, name: str) -> None:
        if not _SCHEMA.match(schema):
            raise ValueError(f"schema: {schema!r} is not a plain lower-case identifier")
        self.name = name
        self.schema = schema
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("SELECT pg_advisory_lock(7345)")  # one creator at a time
            connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            connection.execute(
                pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema))
            )
            connection.execute("SELECT pg_advisory_unlock(7345)")
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_MAX,
            kwargs={"options": f"-c search_path={schema},public", "autocommit": True},
            configure=_register_vector,
            open=True,
        )

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[_PostgresTransaction]:
        """Connections are in autocommit: a read runs each statement on its own (one round
        trip), a write in BEGIN ... COMMIT."""
        with self._pool.connection() as connection, connection.cursor() as cursor:
            if not write:
                yield _PostgresTransaction(cursor)
                return
            with connection.transaction():
                yield _PostgresTransaction(cursor)

    def ensure_vectors(self, dimensions: int) -> str:
        table = vector_table(dimensions)
        with self.transaction() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(7347)")
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (key BIGINT PRIMARY KEY, scope TEXT NOT "
                f"NULL, seq BIGINT NOT NULL, embedding vector({dimensions}) NOT NULL)"
            )
            tx.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} USING hnsw "
                "(embedding vector_cosine_ops)"
            )
            tx.execute(f"CREATE INDEX IF NOT EXISTS {table}_scope ON {table} (scope)")
        return table

    def add_vectors(self, tx: Any, table: str, rows: Sequence[VectorRow]) -> None:
        tx.execute_many(
            f"INSERT INTO {table} (key, scope, seq, embedding) VALUES (?, ?, ?, ?)",
            [(r.key, r.scope, r.seq, _float32(r.vector)) for r in rows],
        )

    def search_vectors(
        self, table: str, scope: str, query: Any, k: int, max_seq: int | None = None
    ) -> list[tuple[int, float]]:
        with self.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT key, embedding <=> ? AS distance FROM {table} WHERE scope = ? "
                "AND seq <= ? ORDER BY embedding <=> ? LIMIT ?",
                (_float32(query), scope, 2**62 if max_seq is None else max_seq, _float32(query), k),
            )
        return sorted(((int(key), float(distance)) for key, distance in rows), key=lambda r: r[1])

    def delete_vectors(self, tx: Any, table: str, keys: Sequence[int]) -> None:
        tx.execute(f"DELETE FROM {table} WHERE key = ANY(?)", (list(keys),))

    def read_vectors(self, tx: Any, table: str, keys: Sequence[int]) -> list[VectorRow]:
        rows = tx.execute(
            f"SELECT key, scope, seq, embedding FROM {table} WHERE key = ANY(?)", (list(keys),)
        )
        return [VectorRow(int(k), scope, int(seq), _float32(v)) for k, scope, seq, v in rows]

    def vector_tables(self) -> list[tuple[str, int]]:
        with self.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                "AND starts_with(table_name, ?)",
                (self.schema, VECTOR_TABLE_PREFIX),
            )
        return [(name, int(name.rsplit("_", 1)[1])) for (name,) in rows]

    def close(self) -> None:
        self._pool.close()


def _register_vector(connection: psycopg.Connection) -> None:
    register_vector(connection)
    # the HNSW index filters by scope after its walk; iterative scans keep walking until k
    # rows of the scope are found (pgvector >= 0.8)
    connection.execute("SET hnsw.iterative_scan = relaxed_order")


def _float32(vector: Any) -> np.ndarray:
    """A float32 array of a list, an array, or pgvector's Vector (as the adapter reads it)."""
    if isinstance(vector, Vector):
        vector = vector.to_numpy()
    return np.asarray(vector, dtype=np.float32)
