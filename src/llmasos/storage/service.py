"""The storage service: opens the shards (SQLite files or PostgreSQL schemas), applies the
migrations, adds shards the settings ask for (rebalancing onto them), and hands out the file
system and agent memory.

    SQLite (default)    $LLMASOS_HOME/storage/shard-<i>.sqlite3
    PostgreSQL          LLMASOS_DATABASE_URL=postgresql://...; schema llmasos_shard_<i> per shard
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from llmasos.errors import InvalidRequestError
from llmasos.security.crypto import Sealer, parse_master_key
from llmasos.settings import Settings
from llmasos.storage.agent_memory import AgentMemory, Embed
from llmasos.storage.database import Database
from llmasos.storage.derived import DerivedCache
from llmasos.storage.documents import index_file
from llmasos.storage.fs import FileSystem, FileSystemView, PathLimit
from llmasos.storage.paths import Principal
from llmasos.storage.sharding import RebalanceReport, Shard, ShardedStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StorageConfig:
    data_dir: Path  # SQLite shards live here
    database_url: str | None = None
    shards: int = 1
    master_key: bytes | None = None
    quota_bytes: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StorageConfig:
        key = parse_master_key(settings.master_key) if settings.master_key else None
        return cls(
            settings.home / "storage", settings.database_url, settings.storage_shards, key,
            settings.storage_quota_bytes,
        )  # fmt: skip


def open_database(config: StorageConfig, index: int) -> Database:
    """Shard `index` of the configured backend."""
    url = config.database_url
    if url is None:
        from llmasos.storage.sqlite_db import SqliteDatabase

        return SqliteDatabase(config.data_dir / f"shard-{index}.sqlite3", f"shard-{index}")
    if not url.startswith(("postgresql://", "postgres://")):
        raise InvalidRequestError(
            "LLMASOS_DATABASE_URL", "must start with postgresql:// (unset it for SQLite)"
        )
    from llmasos.storage.postgres_db import PostgresDatabase

    return PostgresDatabase(url, f"llmasos_shard_{index}", f"shard-{index}")


class Storage:
    """The open storage service."""

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        first = open_database(config, 0)
        store = ShardedStore([first])
        saved = store.saved_catalog() or ["shard-0"]
        for index in range(1, len(saved)):
            store.shards.append(Shard(open_database(config, index)))
        if config.shards < len(saved):
            store.close()
            raise InvalidRequestError(
                "LLMASOS_STORAGE_SHARDS",
                f"the storage already has {len(saved)} shards; removing shards is not supported",
            )
        self.store = store
        store.save_catalog()
        if store.rebalance_pending:  # a rebalance died half way: finish it first
            report = store.rebalance()
            moved = report.owners_moved
            logger.warning("finished an interrupted rebalance: moved %d owners", moved)
        for index in range(len(saved), config.shards):
            report = self.add_shard(index)
            logger.info("added storage shard %d: moved %d owners", index, report.owners_moved)
        self.sealer = Sealer(config.master_key) if config.master_key else None
        self.fs = FileSystem(store, sealer=self.sealer, quota_bytes=config.quota_bytes)
        self.derived = DerivedCache(store, self.sealer)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Storage:
        return cls(StorageConfig.from_settings(settings or Settings.from_environment()))

    def add_shard(self, index: int | None = None) -> RebalanceReport:
        """Open one more shard and move onto it the owners that hash there."""
        index = len(self.store.shards) if index is None else index
        return self.store.add_shard(open_database(self.config, index))

    def files(self, principal: Principal, limit: PathLimit | None = None) -> FileSystemView:
        """The file system as `principal` (`limit`: a capability check on every path)."""
        return self.fs.view(principal, limit)

    def memory(
        self, principal: Principal, embed: Embed | None, limit: PathLimit | None = None
    ) -> AgentMemory:
        """The principal's agent memory; `embed` turns texts into vectors for search (each
        text once: the vectors are cached by content). Its index(path) chunks a file of the
        principal's view into archival entries."""
        cached = self.derived.embedding(embed) if embed is not None else None
        memory = AgentMemory(self.store, principal, cached, self.sealer, self.config.quota_bytes)
        files = self.files(principal, limit)
        memory.indexer = lambda path: index_file(files, memory, self.derived, path)
        return memory

    def close(self) -> None:
        self.store.close()
