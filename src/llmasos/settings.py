"""Settings read from the environment, once, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_STORAGE_QUOTA_BYTES = 1024**3


@dataclass(frozen=True)
class Settings:
    home: Path  # LLMASOS_HOME: models, storage and caches (default ~/.llmasos)
    database_url: str | None = None  # LLMASOS_DATABASE_URL: postgresql://... (default: SQLite)
    master_key: str | None = None  # LLMASOS_MASTER_KEY: turns on encryption at rest
    storage_shards: int = 1  # LLMASOS_STORAGE_SHARDS: owners are hash-partitioned across them
    storage_quota_bytes: int = DEFAULT_STORAGE_QUOTA_BYTES  # LLMASOS_STORAGE_QUOTA, per owner

    @classmethod
    def from_environment(cls) -> Settings:
        env = os.environ
        return cls(
            home=Path(env.get("LLMASOS_HOME", Path.home() / ".llmasos")).expanduser(),
            database_url=env.get("LLMASOS_DATABASE_URL") or None,
            master_key=env.get("LLMASOS_MASTER_KEY") or None,
            storage_shards=_positive(env, "LLMASOS_STORAGE_SHARDS", 1),
            storage_quota_bytes=_positive(
                env, "LLMASOS_STORAGE_QUOTA", DEFAULT_STORAGE_QUOTA_BYTES
            ),
        )


def _positive(env: os._Environ[str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}: must be a whole number >= 1, got {text!r}")
    return int(text)
