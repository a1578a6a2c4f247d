"""A job's folder: what the job manager and the job's worker process share.

$LLMASOS_HOME/jobs/<task id>/
    task.json      the TrainingTask as submitted
    data.jsonl     its data, as sent
    status.json    the TaskStatus; both sides change it under a file lock (update())
    log.jsonl      one line per step: step, epoch, loss, epsilon, time
    control        what the manager asked of a running worker: suspend or cancel
    checkpoint/    the latest checkpoint (state.pt, step.json), replaced atomically
    adapter/       the trained adapter (peft), then adapter.gguf
    worker.log     the worker's own output, for errors
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmasos.jobs.tasks import TaskState, TaskStatus, TrainingTask

MAX_LOG_LINES = 10_000  # a logs request returns at most this many steps
ASK_SUSPEND, ASK_CANCEL, ASK_SHUTDOWN = "suspend", "cancel", "shutdown"
ENDS_AS = {  # what a worker asked to stop ends as
    ASK_SUSPEND: TaskState.SUSPENDED,
    ASK_CANCEL: TaskState.CANCELLED,
    ASK_SHUTDOWN: TaskState.QUEUED,  # resumed when the OS starts again
}


class TaskFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
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
        write_atomic(self.data_path, data)
        write_atomic(self.task_path, json.dumps(task.to_json()).encode())
        write_atomic(self.status_path, json.dumps(status.to_json()).encode())

    def task(self) -> TrainingTask:
        return TrainingTask.from_json(json.loads(self.task_path.read_text()))

    def data(self) -> bytes:
        return self.data_path.read_bytes()

    def status(self) -> TaskStatus:
        return TaskStatus.from_json(json.loads(self.status_path.read_text()))

    def update(self, **changes: Any) -> TaskStatus:
        """Change status fields under the folder's lock; the status as written."""
        with self._locked():
            status = self.status()
            for name, value in changes.items():
                setattr(status, name, value)
            write_atomic(self.status_path, json.dumps(status.to_json()).encode())
            return status

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
        if not self.log_path.is_file():
            return []
        entries = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line being written just now
                entry = json.loads(line)
                if entry["step"] > after_step:
                    entries.append(entry)
        return entries[:MAX_LOG_LINES]

    def cut_log(self, last_step: int) -> None:
        """Drop log lines past `last_step` (steps a killed worker did after its checkpoint,
        which the resumed job does again)."""
        kept = [e for e in self.log() if e["step"] <= last_step]
        write_atomic(self.log_path, "".join(json.dumps(e) + "\n" for e in kept).encode())

    # -- control from the manager ----------------------------------------------------------

    def ask(self, what: str) -> None:
        write_atomic(self.control_path, what.encode())

    def asked(self) -> str | None:
        try:
            return self.control_path.read_text() or None
        except FileNotFoundError:
            return None

    def clear_ask(self) -> None:
        self.control_path.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


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
