"""Storage tests run on both backends: SQLite files in the test's tmp_path, and a real PostgreSQL
server (pg_local.TemporaryPostgres, one per session) with a fresh database per test.

    backend       the test's backend ("sqlite" or "postgres"): opens Storage on the test's data,
                  and reaches the shards' databases directly (to inspect or tamper with rows)
    storage       a Storage on that backend, with the default configuration
    embed         the real default embedding model (all-MiniLM-L6-v2), loaded once per session
    memo          the same model, run once per distinct text of the session (for tests that
                  embed hundreds of texts: one batch instead of a call per text)

Storage needs no language model, so the parent conftest's seeding of the home is turned off.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import sqlean
import sqlite_vec

from llmasos.runtime.embedding import LocalEmbed
from llmasos.storage.pg_local import PostgresUnavailable, TemporaryPostgres
from llmasos.storage.service import Storage, StorageConfig

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def seeded_home(llmasos_home: Path) -> Path:
    """The test's home, without the default language model (storage never loads it)."""
    return llmasos_home


def memory_folder() -> str | None:
    """/dev/shm when there is one: the server's files in RAM make creating databases and stopping
    the server fast (no fsync to a disk); None for the usual temporary folder."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """One throwaway PostgreSQL server for the session; skips its tests when it cannot start."""
    server = TemporaryPostgres()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tempfile, "tempdir", memory_folder() or tempfile.gettempdir())
            server.start()
    except PostgresUnavailable as error:
        server.stop()
        pytest.skip(f"PostgreSQL is unavailable: {error}")
    yield server
    server.stop()


class Backend:
    """One test's storage location on one backend, and direct access to its shards."""

    def __init__(self, name: str, data_dir: Path, server: TemporaryPostgres | None) -> None:
        self.name = name
        self.data_dir = data_dir
        self.server = server
        self.url = server.create_database(f"t_{uuid.uuid4().hex[:16]}") if server else None
        self._opened: list[Storage] = []

    def config(self, **options: Any) -> StorageConfig:
        """A StorageConfig for this test's data, with `options` (shards, master_key, ...)."""
        return StorageConfig(self.data_dir, database_url=self.url, **options)

    def open(self, **options: Any) -> Storage:
        """A Storage on this test's data (closed at teardown)."""
        storage = Storage(self.config(**options))
        self._opened.append(storage)
        return storage

    def close_all(self) -> None:
        """Close every Storage opened here (closing twice is harmless)."""
        for storage in self._opened:
            storage.close()
        self._opened.clear()

    def execute(self, sql: str, params: Sequence[Any] = (), shard: int = 0) -> list[tuple]:
        """Run one statement (`?` placeholders) on a shard's database, outside Storage."""
        if self.url is None:
            path = self.data_dir / f"shard-{shard}.sqlite3"
            with closing(sqlean.connect(str(path), isolation_level=None, timeout=30)) as db:
                db.enable_load_extension(True)
                sqlite_vec.load(db)  # the vector tables are sqlite-vec's
                return db.execute(sql, params).fetchall()
        options = f"-c search_path=llmasos_shard_{shard},public"
        with psycopg.connect(self.url, autocommit=True, options=options) as db:
            cursor = db.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def wal_position(self) -> str | None:
        """PostgreSQL: the current WAL segment's file name (files from it on hold what follows)."""
        if self.url is None:
            return None
        return str(self.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")[0][0])

    def raw_files(self, wal_from: str | None = None) -> list[Path]:
        """Every file the database keeps this test's data in. SQLite: the shard files with their
        WAL; PostgreSQL (after a CHECKPOINT): the database's folder, and the WAL from
        `wal_from` on."""
        if self.server is None or self.server.directory is None:
            return sorted(p for p in self.data_dir.rglob("*") if p.is_file())
        self.execute("CHECKPOINT")
        (oid,) = self.execute("SELECT oid FROM pg_database WHERE datname = current_database()")[0]
        data = self.server.directory / "data"
        files = [p for p in (data / "base" / str(oid)).rglob("*") if p.is_file()]
        wal = [p for p in (data / "pg_wal").iterdir() if p.is_file() and len(p.name) == 24]
        return sorted(files) + sorted(p for p in wal if wal_from is None or p.name >= wal_from)

    def table_values(self, shard: int = 0) -> list[bytes]:
        """Every text and binary value of every table of a shard, as bytes."""
        if self.url is None:
            query = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            query = (
                "SELECT table_name FROM information_schema.tables WHERE table_schema = "
                f"'llmasos_shard_{shard}'"
            )
        values: list[bytes] = []
        for (table,) in self.execute(query, shard=shard):
            for row in self.execute(f'SELECT * FROM "{table}"', shard=shard):
                for value in row:
                    if isinstance(value, str):
                        values.append(value.encode())
                    elif isinstance(value, bytes | bytearray | memoryview):
                        values.append(bytes(value))
        return values


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The test's backend; every Storage it opened is closed at teardown."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    place = Backend(request.param, tmp_path / "storage", server)
    yield place
    place.close_all()


@pytest.fixture
def storage(backend: Backend) -> Storage:
    """A Storage with the default configuration (one shard, no encryption, no quota)."""
    return backend.open()


@pytest.fixture(scope="session")
def embed(session_home: Path) -> Iterator[LocalEmbed]:
    """The real default embedding model, in this process."""
    model = LocalEmbed(session_home)
    yield model
    model.close()


class Memo:
    """The real embedding model, run once per distinct text (its output is deterministic)."""

    def __init__(self, embed: LocalEmbed) -> None:
        self._embed = embed
        self._vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        missing = [text for text in dict.fromkeys(texts) if text not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._embed(missing), strict=True))
        return [self._vectors[text] for text in texts]


@pytest.fixture(scope="session")
def memo(embed: LocalEmbed) -> Memo:
    """The session's embedding model behind one Memo."""
    return Memo(embed)
