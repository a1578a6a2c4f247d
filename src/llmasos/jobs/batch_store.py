"""Where batches live: OpenAI-style files and batches with their per-line results, in the
storage's first shard.

An upload's bytes are a file of its owner's (`~OWNER/.batches/FILE_ID`: sealed and counted
against the owner's quota like any other), and a batch reads the version it was checked
against. Each line's answer is committed as it ends (sealed, under the owner's key, when the
storage seals), so a batch resumes after a restart without losing or repeating a line; a batch's
output and error files are made from those answers when read, so finishing a batch writes
nothing big and cannot fail for size. Status changes are conditional (one transaction reads and
writes), so a cancel and the end of a batch cannot overwrite each other.

Every lookup takes the caller's owner: another owner's file or batch is as unknown as a
missing one. One server runs the batches of a storage.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmasos.errors import ObjectInUseError, UnknownObjectError
from llmasos.jobs.batch_lines import ACTIVE, BatchLine, BatchStatus, output_line, parse_lines
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage

FOLDER = ".batches"
PAGE = 500  # results read at a time when a file is made from them
_FILE_COLUMNS = "id, owner, filename, purpose, bytes, created_at, version, batch_id, part"


@dataclass(frozen=True)
class FileRecord:
    id: str
    owner: str
    filename: str
    purpose: str
    bytes: int
    created_at: float
    version: int | None  # an upload's version in the owner's files
    batch_id: str | None = None  # an output or error file's batch
    part: str | None = None  # "output" or "error"

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
        file_id = new_id("file")
        version = self._storage.files(Principal(owner)).write(f"{FOLDER}/{file_id}", data)
        record = FileRecord(file_id, owner, filename, purpose, len(data), time.time(), version)
        self._insert_file(record)
        return record

    def _insert_file(self, record: FileRecord) -> None:
        with self._db.transaction() as tx:
            self._insert(tx, record)

    @staticmethod
    def _insert(tx: Any, record: FileRecord) -> None:
        tx.execute(
            f"INSERT INTO batch_files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.owner, record.filename, record.purpose, record.bytes,
             record.created_at, record.version, record.batch_id, record.part),
        )  # fmt: skip

    def file(self, owner: str, file_id: str, field: str = "file_id") -> FileRecord:
        rows = self._files("WHERE id = ? AND owner = ?", (file_id, owner))
        if not rows:
            raise UnknownObjectError(field, file_id)
        return rows[0]

    def files(self, owner: str) -> list[FileRecord]:
        return self._files("WHERE owner = ? ORDER BY created_at, id", (owner,))

    def _files(self, where: str, params: tuple[Any, ...]) -> list[FileRecord]:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(f"SELECT {_FILE_COLUMNS} FROM batch_files {where}", params)
        return [FileRecord(*row) for row in rows]

    def content(self, owner: str, file_id: str, field: str = "file_id") -> Iterator[bytes]:
        """A file's bytes: an upload's, or an output file's lines made as they are read."""
        record = self.file(owner, file_id, field)
        if record.batch_id is None:
            files = self._storage.files(Principal(owner))
            return iter([files.read(f"{FOLDER}/{record.id}", record.version)])
        return self._made(owner, record.batch_id, record.part == "error")

    def requests(self, owner: str, file_id: str, endpoint: str) -> list[BatchLine]:
        """The requests of an input file, checked line by line (see batch_lines)."""
        return parse_lines(b"".join(self.content(owner, file_id, "input_file_id")), endpoint)

    def delete_file(self, owner: str, file_id: str) -> None:
        record = self.file(owner, file_id)
        with self._db.transaction() as tx:
            busy = tx.execute(
                "SELECT id FROM batches WHERE input_file_id = ? AND status IN (?, ?, ?, ?)",
                (record.id, *ACTIVE),
            )
            if busy:
                raise ObjectInUseError("file_id", f"batch {busy[0][0]} still reads this file")
            tx.execute("DELETE FROM batch_files WHERE id = ?", (record.id,))
        if record.batch_id is None:
            self._storage.files(Principal(owner)).purge(f"{FOLDER}/{record.id}")

    # -- batches ---------------------------------------------------------------------------

    def add_batch(self, owner: str, key_id: str | None, body: dict[str, Any]) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO batches (id, owner, key_id, status, input_file_id, created_at, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (body["id"], owner, key_id, body["status"], body["input_file_id"],
                 body["created_at"], json.dumps(body)),
            )  # fmt: skip

    def batch(self, owner: str, batch_id: str) -> dict[str, Any]:
        owner_of, _, body = self._row(batch_id)
        if owner_of != owner:
            raise UnknownObjectError("batch_id", batch_id)
        return body

    def _row(self, batch_id: str) -> tuple[str, str | None, dict[str, Any]]:
        """(owner, key id, object) of a batch."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT owner, key_id, body FROM batches WHERE id = ?", (batch_id,))
        if not rows:
            raise UnknownObjectError("batch_id", batch_id)
        return rows[0][0], rows[0][1], json.loads(rows[0][2])

    def identity(self, batch_id: str) -> tuple[str, str | None]:
        """(owner, key id) of the batch's creator."""
        owner, key_id, _ = self._row(batch_id)
        return owner, key_id

    def batches(self, owner: str) -> list[dict[str, Any]]:
        """The owner's batches, oldest first."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT body FROM batches WHERE owner = ? ORDER BY created_at, id", (owner,)
            )
        return [json.loads(row[0]) for row in rows]

    def active(self) -> list[tuple[str, str]]:
        """(batch id, owner) of every batch still to run or finish, oldest first."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT id, owner FROM batches WHERE status IN (?, ?, ?, ?) "
                "ORDER BY created_at, id",
                tuple(ACTIVE),
            )
        return [(row[0], row[1]) for row in rows]

    def transition(
        self, batch_id: str, states: tuple[BatchStatus, ...], **fields: Any
    ) -> tuple[str, dict[str, Any]] | None:
        """Set fields (a new status among them) if the batch's status is one of `states`:
        (the status it had, the batch as it is now); None when its status was another."""
        with self._db.transaction() as tx:
            (body,) = tx.execute("SELECT body FROM batches WHERE id = ?", (batch_id,))[0]
            batch = json.loads(body)
            before = batch["status"]
            if before not in states:
                return None
            batch.update(fields)
            tx.execute(
                "UPDATE batches SET body = ?, status = ? WHERE id = ?",
                (json.dumps(batch), batch["status"], batch_id),
            )
        return before, batch

    def add_output_files(self, owner: str, batch_id: str) -> dict[str, str | None]:
        """The output and error files of a batch whose lines are all answered (made from the
        answers when read); {"output_file_id": ..., "error_file_id": ...}, None for an empty
        one."""
        ids: dict[str, str | None] = {}
        records = []
        for part in ("output", "error"):
            size = sum(len(chunk) for chunk in self._made(owner, batch_id, part == "error"))
            record = FileRecord(
                new_id("file"), owner, f"{batch_id}_{part}.jsonl", "batch_output", size,
                time.time(), None, batch_id, part,
            )  # fmt: skip
            records += [record] if size else []
            ids[f"{part}_file_id"] = record.id if size else None
        with self._db.transaction() as tx:  # a finish repeated after a crash replaces them
            tx.execute("DELETE FROM batch_files WHERE batch_id = ?", (batch_id,))
            for record in records:
                self._insert(tx, record)
        return ids

    # -- results ---------------------------------------------------------------------------

    def add_result(self, owner: str, batch_id: str, line: int, custom_id: str,
                   status: int, body: str) -> None:  # fmt: skip
        """One line's answer; a line answered already keeps its first answer."""
        sealed = self._seal(owner, batch_id, line, body.encode())
        with self._db.transaction() as tx:
            done = tx.execute(
                "SELECT 1 FROM batch_results WHERE batch_id = ? AND line = ?", (batch_id, line)
            )
            if not done:
                tx.execute(
                    "INSERT INTO batch_results (batch_id, line, custom_id, status, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (batch_id, line, custom_id, status, sealed),
                )

    def answered(self, batch_id: str) -> set[int]:
        with self._db.transaction(write=False) as tx:
            rows = tx.execute("SELECT line FROM batch_results WHERE batch_id = ?", (batch_id,))
        return {row[0] for row in rows}

    def counts(self, batch_id: str) -> tuple[int, int]:
        """(lines answered, of them with an error status) so far."""
        with self._db.transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) FROM "
                "batch_results WHERE batch_id = ?",
                (batch_id,),
            )
        return int(rows[0][0]), int(rows[0][1] or 0)

    def _made(self, owner: str, batch_id: str, errors: bool) -> Iterator[bytes]:
        """The output (or error) file's lines, in input order, a page of answers at a time."""
        condition = "status >= 400" if errors else "status < 400"
        after = 0
        while True:
            with self._db.transaction(write=False) as tx:
                rows = tx.execute(
                    "SELECT line, custom_id, status, body FROM batch_results WHERE "
                    f"batch_id = ? AND line > ? AND {condition} ORDER BY line LIMIT ?",
                    (batch_id, after, PAGE),
                )
            if not rows:
                return
            for line, custom_id, status, body in rows:
                text = self._open(owner, batch_id, line, bytes(body)).decode()
                yield output_line(batch_id, line, custom_id, status, text).encode()
            after = rows[-1][0]

    def _seal(self, owner: str, batch_id: str, line: int, data: bytes) -> bytes:
        sealer = self._storage.sealer
        bound = f"batch\x00{batch_id}\x00{line}".encode()
        return data if sealer is None else sealer.seal(owner, bound, data)

    def _open(self, owner: str, batch_id: str, line: int, data: bytes) -> bytes:
        sealer = self._storage.sealer
        bound = f"batch\x00{batch_id}\x00{line}".encode()
        return data if sealer is None else sealer.open(owner, bound, data)
