"""A job's folder: what the job manager and the job's worker process share.

$LLMASOS_HOME/jobs/<task id>/
    task.json      the TrainingTask as submitted
    data.jsonl     its data, as sent (sealed, as the secret and checkpoints are, see Seal)
    secret         the seed of the job's DP sampling and noise
    status.json    the TaskStatus; both sides change it under a file lock (update())
    log.jsonl      one line per step: step, epoch, loss, epsilon, time
    control        what the manager asked of a running worker: suspend or cancel
    checkpoint/    the latest checkpoint (step-N.pt), replaced atomically
    adapter/       the trained adapter (peft), then adapter.gguf
    worker.log     the worker's own output, for errors
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmasos.errors import IntegrityError
from llmasos.jobs.tasks import TaskState, TaskStatus, TrainingTask
from llmasos.security.crypto import MAGIC, Sealer

MAX_LOG_LINES = 10_000  # a logs request returns at most this many steps
ASK_SUSPEND, ASK_CANCEL, ASK_SHUTDOWN = "suspend", "cancel", "shutdown"
ENDS_AS = {  # what a worker asked to stop ends as
    ASK_SUSPEND: TaskState.SUSPENDED,
    ASK_CANCEL: TaskState.CANCELLED,
    ASK_SHUTDOWN: TaskState.QUEUED,  # resumed when the OS starts again
}
RANK = {ASK_SHUTDOWN: 1, ASK_SUSPEND: 2, ASK_CANCEL: 3}


@dataclass(frozen=True)
class Seal:
    """One owner's job data at rest: sealed under the owner's key when the OS has a master key
    (LLMASOS_MASTER_KEY), plain otherwise. A record is bound to its place (`bound_to`), so one
    copied onto another job, step or cache entry fails to open."""

    sealer: Sealer | None
    owner: str

    def write(self, path: Path, bound_to: str, data: bytes) -> None:
        if self.sealer is not None:
            data = self.sealer.seal(self.owner, _job_record(bound_to), data)
        write_atomic(path, data)

    def read(self, path: Path, bound_to: str) -> bytes:
        """The plaintext; IntegrityError when the record was altered or moved, or is sealed
        and the OS has no master key now."""
        record = path.read_bytes()
        if self.sealer is not None:
            return self.sealer.open(self.owner, _job_record(bound_to), record)
        if record.startswith(MAGIC):
            raise IntegrityError(f"{bound_to}: sealed at rest, and LLMASOS_MASTER_KEY is not set")
        return record

    def file_name(self, key: str) -> str:
        """A file name for `key` that, sealed, tells nothing of it (a keyed digest)."""
        return self.sealer.digest(self.owner, key.encode()) if self.sealer else key


def _job_record(bound_to: str) -> bytes:
    return b"job\0" + bound_to.encode()


class TaskFiles:
    def __init__(self, folder: Path, sealer: Sealer | None = None) -> None:
        """The job in `folder`; `sealer` (the OS's master key) seals its data at rest."""
        self.folder = folder
        self.sealer = sealer
        self.task_path = folder / "task.json"
        self.data_path = folder / "data.jsonl"
        self.status_path = folder / "status.json"
        self.log_path = folder / "log.jsonl"
        self.control_path = folder / "control"
        self.checkpoint = folder / "checkpoint"
        self.adapter = folder / "adapter"
        self.adapter_gguf = folder / "adapter.gguf"
        self.worker_log = folder / "worker.log"

    @property
    def task_id(self) -> str:
        return self.folder.name

    def create(self, task: TrainingTask, data: bytes, status: TaskStatus) -> None:
        self.folder.mkdir(parents=True)
        seal = Seal(self.sealer, status.owner)
        seal.write(
            self.folder / "secret", self._place("secret"), str(secrets.randbits(63)).encode()
        )
        seal.write(self.data_path, self._place("data"), data)
        write_atomic(self.task_path, json.dumps(task.to_json()).encode())
        write_atomic(self.status_path, json.dumps(status.to_json()).encode())

    def seal(self) -> Seal:
        """The sealing of this job's owner's data."""
        return Seal(self.sealer, self.status().owner)

    def _place(self, name: str) -> str:
        return f"{self.task_id}/{name}"

    def task(self) -> TrainingTask:
        return TrainingTask.from_json(json.loads(self.task_path.read_text()))

    def secret(self) -> int:
        """The job's secret seed (DP sampling and noise): never in its status."""
        return int(self.seal().read(self.folder / "secret", self._place("secret")))

    def data(self) -> bytes:
        return self.seal().read(self.data_path, self._place("data"))

    def write_checkpoint(self, step: int, state: bytes) -> Path:
        self.checkpoint.mkdir(exist_ok=True)
        path = self.checkpoint / f"step-{step:09d}.pt"
        self.seal().write(path, self._place(path.name), state)
        return path

    def read_checkpoint(self, path: Path) -> bytes:
        return self.seal().read(path, self._place(path.name))

    def status(self) -> TaskStatus:
        return TaskStatus.from_json(json.loads(self.status_path.read_text()))

    def update(self, *, only_from: tuple[TaskState, ...] = (), **changes: Any) -> TaskStatus | None:
        """Change status fields under the folder's lock; the status as written. With
        `only_from`, only a job in one of those states changes (None otherwise): a change
        another process made meanwhile is never overwritten."""
        with self._locked():
            status = self.status()
            if only_from and status.state not in only_from:
                return None
            for name, value in changes.items():
                setattr(status, name, value)
            write_atomic(self.status_path, json.dumps(status.to_json()).encode())
            return status

    def end_as_asked(self, otherwise: str) -> TaskState:
        """A running job stopped: it takes the state the latest request asks for (`otherwise`
        without one), and the request is used up, in one step under the lock."""
        with self._locked():
            ask = self.asked() or otherwise
            status = self.status()
            status.state = ENDS_AS.get(ask, TaskState.QUEUED)
            status.eta_s = None
            status.finished_at = time.time() if status.state is TaskState.CANCELLED else None
            write_atomic(self.status_path, json.dumps(status.to_json()).encode())
            self.control_path.unlink(missing_ok=True)
            return status.state

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- the step log ----------------------------------------------------------------------

    def log_step(self, entry: dict[str, Any]) -> None:
        with self.log_path.open("a") as file:
            file.write(json.dumps({**entry, "time": time.time()}) + "\n")

    def log(self, after_step: int = 0) -> list[dict[str, Any]]:
        """The step log past `after_step` (at most MAX_LOG_LINES lines)."""
        entries = []
        for entry in self._entries():
            if entry["step"] > after_step:
                entries.append(entry)
                if len(entries) == MAX_LOG_LINES:
                    break
        return entries

    def _entries(self) -> Iterator[dict[str, Any]]:
        if not self.log_path.is_file():
            return
        with self.log_path.open() as file:
            for line in file:
                with contextlib.suppress(ValueError):  # a line being written just now
                    yield json.loads(line)

    def cut_log(self, last_step: int) -> None:
        """Drop log lines past `last_step` (steps a killed worker did after its checkpoint,
        which the resumed job does again)."""
        kept = [json.dumps(e) + "\n" for e in self._entries() if e["step"] <= last_step]
        write_atomic(self.log_path, "".join(kept).encode())

    # -- control from the manager ----------------------------------------------------------

    def ask(self, what: str) -> None:
        """Ask the running worker to stop; a weaker request never replaces a stronger one
        (cancel over suspend over shutdown)."""
        with self._locked():
            current = self.asked()
            if current is None or RANK[what] > RANK.get(current, 0):
                write_atomic(self.control_path, what.encode())

    def asked(self) -> str | None:
        try:
            return self.control_path.read_text() or None
        except FileNotFoundError:
            return None

    def clear_ask(self) -> None:
        self.control_path.unlink(missing_ok=True)

    def discard_work(self) -> None:
        """The job ended: its checkpoints and adapter files are of no more use (the result,
        if any, is in the model repository)."""
        shutil.rmtree(self.checkpoint, ignore_errors=True)
        shutil.rmtree(self.adapter, ignore_errors=True)
        self.adapter_gguf.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` by a rename: a reader sees the old or the new file, never half."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
