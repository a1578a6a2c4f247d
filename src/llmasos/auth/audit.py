"""The audit log: an append-only, hash-chained record of security-relevant events (keys used
and refused, refusals, kills, imports, grants, key changes), in the storage's first shard.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own canonical JSON,
and the newest (seq, hash) is also kept apart in the meta table; verify() walks the chain from
the first entry, so an edited, removed, inserted or reordered entry, or a cut tail, is found
and named.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from llmasos.storage.service import Storage

GENESIS = "0" * 64
MAX_FIELD_CHARS = 512  # an entry's text fields are bounded: what a client sends is cut here
_FIELDS = ("event", "actor", "target", "outcome", "detail")
_COLUMNS = "seq, at, event, actor, target, outcome, detail, prev_hash, hash"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    event: str  # e.g. auth.refused, permission.refused, key.created, model.imported
    actor: str  # the owner (or "anonymous", or a key id) that acted
    target: str  # what it acted on
    outcome: str  # ok | refused | failed
    detail: str
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def entry_hash(prev_hash: str, seq: int, at: float, fields: dict[str, str]) -> str:
    body = json.dumps({"seq": seq, "at": repr(at), **fields}, sort_keys=True)
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def _bounded(text: str) -> str:
    text = str(text)
    return text if len(text) <= MAX_FIELD_CHARS else text[:MAX_FIELD_CHARS] + "...(cut)"


class AuditLog:
    def __init__(self, storage: Storage) -> None:
        self._db = storage.store.catalog.db

    def append(
        self, event: str, actor: str, target: str = "", outcome: str = "ok", detail: str = ""
    ) -> AuditEntry:
        fields = {
            "event": _bounded(event), "actor": _bounded(actor), "target": _bounded(target),
            "outcome": _bounded(outcome), "detail": _bounded(detail),
        }  # fmt: skip
        with self._db.transaction() as tx:
            if self._db.dialect == "postgres":  # appenders take turns
                tx.execute("SELECT pg_advisory_xact_lock(7348)")
            last = tx.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            seq, prev = (int(last[0][0]) + 1, str(last[0][1])) if last else (1, GENESIS)
            at = time.time()
            digest = entry_hash(prev, seq, at, fields)
            tx.execute(
                f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at, *fields.values(), prev, digest),
            )
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('audit_head', ?) ON CONFLICT (key) DO "
                "UPDATE SET value = excluded.value",
                (f"{seq}:{digest}",),
            )
        return AuditEntry(seq, at, *fields.values(), prev, digest)

    def entries(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            )
        return [AuditEntry(int(r[0]), float(r[1]), *map(str, r[2:])) for r in rows]

    def verify(self) -> str | None:
        """None for an intact log, else what is wrong and where (the first bad entry)."""
        prev, expected_seq, after = GENESIS, 1, 0
        while batch := self.entries(after, 5000):
            for entry in batch:
                if entry.seq != expected_seq:
                    return f"entry {expected_seq}: missing (the next entry is {entry.seq})"
                fields = {k: getattr(entry, k) for k in _FIELDS}
                digest = entry_hash(prev, entry.seq, entry.at, fields)
                if entry.prev_hash != prev or digest != entry.hash:
                    return f"entry {entry.seq}: edited (its hash does not match its contents)"
                prev, expected_seq, after = entry.hash, entry.seq + 1, entry.seq
        with self._db.transaction(write=False) as tx:
            head = tx.execute("SELECT value FROM meta WHERE key = 'audit_head'")
        if head and head[0][0] != f"{expected_seq - 1}:{prev}":
            last = head[0][0].split(":")[0]
            return f"entry {expected_seq}: missing (the log was cut; it ended at entry {last})"
        return None
