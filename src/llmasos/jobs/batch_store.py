"""Where batches live: OpenAI-style files and batches with their per-line results, in the
storage's first shard. A file's bytes are a file of its owner's (`~OWNER/.batches/FILE_ID`:
sealed, versioned and counted against the owner's quota like any other); each line's result is
committed as it ends, so a batch resumes after a restart without losing or repeating a line.

Every lookup takes the caller's owner: another owner's file or batch is as unknown as a
missing one.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from llmasos.errors import UnknownObjectError
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage

FOLDER = ".batches"


@dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "object": "file", "bytes": self.bytes,
            "created_at": int(self.created_at), "filename": self.filename,
            "purpose": self.purpose, "status": "processed", "status_details": None,
        }  # fmt: skip


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


class BatchStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._db = storage.store.catalog.db

    # -- files -----------------------------------------------------------------------------

    def add_file(self, owner: str, filename: str, purpose: str, data: bytes) -> FileRecord:
        record = FileRecord(new_id("file"), owner, filename, purpose, len(data), time.time())
        self._storage.files(Principal(owner)).write(f"{FOLDER}/{record.id}", data)
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO batch_files (id, owner, filename, purpose, bytes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                tuple(asdict(record).values()),
            )
        return record

    def file(self, owner: str, file_id: str, field: str = "file_id") -> FileRecord:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT id, owner, filename, purpose, bytes, created_at FROM batch_files "
                "WHERE id = ? AND owner = ?",
                (file_id, owner),
            )
        if not rows:
            raise UnknownObjectError(field, file_id)
        return FileRecord(*rows[0])

    def files(self, owner: str) -> list[FileRecord]:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT id, owner, filename, purpose, bytes, created_at FROM batch_files "
                "WHERE owner = ? ORDER BY created_at",
                (owner,),
            )
        return [FileRecord(*row) for row in rows]

    def content(self, owner: str, file_id: str, field: str = "file_id") -> bytes:
        record = self.file(owner, file_id, field)
        return self._storage.files(Principal(owner)).read(f"{FOLDER}/{record.id}")

    def delete_file(self, owner: str, file_id: str) -> None:
        record = self.file(owner, file_id)
        self._storage.files(Principal(owner)).purge(f"{FOLDER}/{record.id}")
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM batch_files WHERE id = ?", (record.id,))

    # -- batches ---------------------------------------------------------------------------

    def add_batch(self, owner: str, key_id: str | None, body: dict[str, Any]) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO batches (id, owner, key_id, created_at, body) VALUES (?, ?, ?, ?, ?)",
                (body["id"], owner, key_id, body["created_at"], json.dumps(body)),
            )

    def batch(self, owner: str | None, batch_id: str) -> dict[str, Any]:
        """A batch's object (any owner's with owner None: the runner)."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT owner, body FROM batches WHERE id = ?", (batch_id,))
        if not rows or (owner is not None and rows[0][0] != owner):
            raise UnknownObjectError("batch_id", batch_id)
        return json.loads(rows[0][1])

    def identity(self, batch_id: str) -> tuple[str, str | None]:
        """(owner, key id) of the batch's creator."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT owner, key_id FROM batches WHERE id = ?", (batch_id,))
        if not rows:
            raise UnknownObjectError("batch_id", batch_id)
        return rows[0][0], rows[0][1]

    def batches(self, owner: str | None = None) -> list[dict[str, Any]]:
        """The owner's batches (every owner's with None), oldest first."""
        query, params = "SELECT body FROM batches", ()
        if owner is not None:
            query, params = query + " WHERE owner = ?", (owner,)
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(query + " ORDER BY created_at", params)
        return [json.loads(row[0]) for row in rows]

    def update(self, batch_id: str, **fields: Any) -> dict[str, Any]:
        """Set fields of the batch's object; the object as it is now."""
        with self._db.transaction() as tx:
            (body,) = tx.execute("SELECT body FROM batches WHERE id = ?", (batch_id,))[0]
            batch = {**json.loads(body), **fields}
            tx.execute("UPDATE batches SET body = ? WHERE id = ?", (json.dumps(batch), batch_id))
        return batch

    # -- results ---------------------------------------------------------------------------

    def add_result(self, batch_id: str, line: int, status: int, body: str) -> None:
        """One line's answer; a line answered already keeps its first answer."""
        with self._db.transaction() as tx:
            done = tx.execute(
                "SELECT 1 FROM batch_results WHERE batch_id = ? AND line = ?", (batch_id, line)
            )
            if not done:
                tx.execute(
                    "INSERT INTO batch_results (batch_id, line, status, body) VALUES (?, ?, ?, ?)",
                    (batch_id, line, status, body),
                )

    def counts(self, batch_id: str) -> tuple[int, int]:
        """(lines answered, of them with an error status) so far."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) FROM "
                "batch_results WHERE batch_id = ?",
                (batch_id,),
            )
        return int(rows[0][0]), int(rows[0][1] or 0)

    def results(self, batch_id: str) -> dict[int, tuple[int, str]]:
        """line -> (HTTP status, response body) of the lines answered so far."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT line, status, body FROM batch_results WHERE batch_id = ?", (batch_id,)
            )
        return {line: (status, body) for line, status, body in rows}
