"""The storage schema, as numbered migrations applied on open (both dialects, one list).

Every table carries the owner its rows belong to: shards are chosen by owner, and rebalancing
moves an owner's rows between shards table by table (see sharding).
"""

from __future__ import annotations

from llmasos.storage.database import Database, Transaction

_TYPES = {
    "sqlite": {"INT": "INTEGER", "REAL": "REAL", "BLOB": "BLOB"},
    "postgres": {"INT": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"},
}

# (version, statements); {INT} {REAL} {BLOB} become the dialect's types. Never edit a released
# migration: add the next one.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE file_versions (
                owner TEXT NOT NULL, namespace TEXT NOT NULL, path TEXT NOT NULL,
                version {INT} NOT NULL, size {INT} NOT NULL, sha256 TEXT NOT NULL,
                deleted {INT} NOT NULL, created_at {REAL} NOT NULL, author TEXT NOT NULL,
                data {BLOB} NOT NULL, PRIMARY KEY (namespace, path, version))""",
            "CREATE INDEX file_versions_owner ON file_versions (owner)",
            """CREATE TABLE file_heads (
                owner TEXT NOT NULL, namespace TEXT NOT NULL, path TEXT NOT NULL,
                version {INT} NOT NULL, size {INT} NOT NULL, sha256 TEXT NOT NULL,
                deleted {INT} NOT NULL, modified_at {REAL} NOT NULL, author TEXT NOT NULL,
                PRIMARY KEY (namespace, path))""",
            "CREATE INDEX file_heads_owner ON file_heads (owner)",
            "CREATE TABLE owner_usage (owner TEXT PRIMARY KEY, bytes {INT} NOT NULL)",
            """CREATE TABLE grants (
                owner TEXT NOT NULL, namespace TEXT NOT NULL, prefix TEXT NOT NULL,
                grantee TEXT NOT NULL, mode TEXT NOT NULL, created_at {REAL} NOT NULL,
                PRIMARY KEY (namespace, prefix, grantee))""",
            "CREATE INDEX grants_owner ON grants (owner)",
            """CREATE TABLE memory_core (
                owner TEXT NOT NULL, scope TEXT NOT NULL, label TEXT NOT NULL,
                value {BLOB} NOT NULL, updated_at {REAL} NOT NULL,
                PRIMARY KEY (scope, label))""",
            "CREATE INDEX memory_core_owner ON memory_core (owner)",
            """CREATE TABLE memory_entries (
                key {INT} PRIMARY KEY, owner TEXT NOT NULL, scope TEXT NOT NULL,
                kind TEXT NOT NULL, seq {INT} NOT NULL, role TEXT NOT NULL,
                text {BLOB} NOT NULL, created_at {REAL} NOT NULL, vector_table TEXT)""",
            "CREATE INDEX memory_entries_scope ON memory_entries (scope, kind, seq)",
            "CREATE INDEX memory_entries_owner ON memory_entries (owner)",
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE derived (
                key TEXT PRIMARY KEY, kind TEXT NOT NULL, value {BLOB} NOT NULL,
                created_at {REAL} NOT NULL)""",
        ],
    ),
    (
        2,
        [  # a scope's turns are numbered once each (appenders take turns)
            "CREATE UNIQUE INDEX memory_entries_seq ON memory_entries (scope, kind, seq)",
        ],
    ),
    (
        3,
        [  # API keys and the audit log (kept in the first shard)
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY, owner TEXT NOT NULL, role TEXT NOT NULL,
                salt {BLOB} NOT NULL, hash {BLOB} NOT NULL, created_at {REAL} NOT NULL,
                expires_at {REAL}, revoked_at {REAL})""",
            """CREATE TABLE audit_log (
                seq {INT} PRIMARY KEY, at {REAL} NOT NULL, event TEXT NOT NULL,
                actor TEXT NOT NULL, target TEXT NOT NULL, outcome TEXT NOT NULL,
                detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)""",
        ],
    ),
    (
        4,
        [  # a key's capabilities (JSON; NULL: none beyond its role)
            "ALTER TABLE api_keys ADD COLUMN capabilities TEXT",
        ],
    ),
    (
        5,
        [  # OpenAI-style batch files and batches (kept in the first shard; contents in files)
            # an upload's bytes are a file of its owner's at `version`; an output or error
            # file (`part`) is made from its batch's results when read
            """CREATE TABLE batch_files (
                id TEXT PRIMARY KEY, owner TEXT NOT NULL, filename TEXT NOT NULL,
                purpose TEXT NOT NULL, bytes {INT} NOT NULL, created_at {REAL} NOT NULL,
                version {INT}, batch_id TEXT, part TEXT)""",
            "CREATE INDEX batch_files_owner ON batch_files (owner, created_at)",
            """CREATE TABLE batches (
                id TEXT PRIMARY KEY, owner TEXT NOT NULL, key_id TEXT, status TEXT NOT NULL,
                input_file_id TEXT NOT NULL, created_at {REAL} NOT NULL, body TEXT NOT NULL)""",
            "CREATE INDEX batches_status ON batches (status, created_at)",
            "CREATE INDEX batches_owner ON batches (owner, created_at)",
            """CREATE TABLE batch_results (
                batch_id TEXT NOT NULL, line {INT} NOT NULL, custom_id TEXT NOT NULL,
                status {INT} NOT NULL, body {BLOB} NOT NULL, PRIMARY KEY (batch_id, line))""",
        ],
    ),
]

# The tables that hold an owner's rows, and the columns of each, for moving them between shards.
OWNER_TABLES: dict[str, tuple[str, ...]] = {
    "file_versions": (
        "owner",
        "namespace",
        "path",
        "version",
        "size",
        "sha256",
        "deleted",
        "created_at",
        "author",
        "data",
    ),
    "file_heads": (
        "owner",
        "namespace",
        "path",
        "version",
        "size",
        "sha256",
        "deleted",
        "modified_at",
        "author",
    ),
    "owner_usage": ("owner", "bytes"),
    "grants": ("owner", "namespace", "prefix", "grantee", "mode", "created_at"),
    "memory_core": ("owner", "scope", "label", "value", "updated_at"),
    "memory_entries": (
        "key",
        "owner",
        "scope",
        "kind",
        "seq",
        "role",
        "text",
        "created_at",
        "vector_table",
    ),
}


def migrate(db: Database) -> int:
    """Apply the migrations this database lacks, each in its own transaction; the version."""
    with db.transaction() as tx:
        _one_at_a_time(db, tx)  # CREATE ... IF NOT EXISTS races on PostgreSQL too
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at TEXT NOT NULL)"
        )
    current = 0
    for version, statements in MIGRATIONS:
        with db.transaction() as tx:
            _one_at_a_time(db, tx)  # two servers starting at once apply it once
            done = tx.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (version,))
            if not done:
                for statement in statements:
                    tx.execute(statement.format(**_TYPES[db.dialect]))
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, "
                    "CURRENT_TIMESTAMP)",
                    (version,),
                )
        current = version
    return current


def _one_at_a_time(db: Database, tx: Transaction) -> None:
    """Hold PostgreSQL's migration lock until the transaction ends (SQLite's writes are
    serial already)."""
    if db.dialect == "postgres":
        tx.execute("SELECT pg_advisory_xact_lock(7346)")
