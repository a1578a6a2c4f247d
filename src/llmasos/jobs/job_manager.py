"""The job manager: training jobs as processes of the OS.

A job gets a pid from the OS's pid space, an owner, a priority (background by default) and a
state (queued, running, suspended, succeeded, failed, cancelled). Jobs run one at a time, in
their order of submission, each in its own worker process (llmasos.jobs.worker) that one
supervisor thread starts and watches. Suspend and cancel ask the worker to stop after its step
under way; a suspended job resumes from its checkpoint. Everything lives in the jobs folder, so
a job survives the OS: at start, a job that was running (the OS stopped or was killed) is queued
again and resumes from its checkpoint. One manager a jobs folder runs jobs (a file lock); others
on the same home submit, read and signal them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import itertools
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from llmasos.errors import ModelExistsError, ObjectInUseError, UnknownObjectError
from llmasos.jobs.job_files import ASK_CANCEL, ASK_SHUTDOWN, ASK_SUSPEND, ENDS_AS, TaskFiles
from llmasos.jobs.task_data import read_records
from llmasos.jobs.tasks import ENDED, TaskState, TaskStatus, TrainingTask
from llmasos.jobs.throttle import Throttle
from llmasos.models.repository import Repository, full_name

POLL_S = 0.2
STOP_WAIT_S = 120.0  # a worker asked to stop finishes its step first (seconds on a CPU)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover (runs in the child before exec)
    """The worker gets SIGKILL when its supervisor thread's process dies (kill -9 of the OS):
    an orphan must not go on writing a job the restarted OS resumes."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class JobManager:
    def __init__(
        self,
        home: Path,
        repository: Repository,
        *,
        pids: Iterator[int] | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        """Jobs under `home`/jobs, trained on `repository`'s models (their results registered
        there); `throttle` pauses the running job while interactive work runs."""
        self.home = home
        self.root = home / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self.repository = repository
        self._pids = pids or itertools.count(1)
        self._throttle = throttle
        self._lock = threading.Condition()
        self._worker: tuple[TaskFiles, subprocess.Popen[bytes]] | None = None
        self._closing = False
        self._runner_lock = (self.root / ".runner.lock").open("a")
        self._runner = False  # this manager runs the jobs (holds the folder's runner lock)
        self._supervisor = threading.Thread(
            target=self._supervise, name="llmasos-jobs", daemon=True
        )
        self._supervisor.start()

    # -- the API ----------------------------------------------------------------------------

    def submit(self, task: TrainingTask, data: bytes, owner: str) -> TaskStatus:
        """Queue `task` on `data` for `owner`; refused up front when the data, the model or the
        output name is bad."""
        records = read_records(data)
        base = self.repository.show(full_name(task.model))  # UnknownModelError otherwise
        if task.output is not None and full_name(task.output) in self.repository:
            raise ModelExistsError(full_name(task.output))
        task_id = f"task-{secrets.token_hex(8)}"
        status = TaskStatus(
            id=task_id,
            state=TaskState.QUEUED,
            owner=owner,
            pid=next(self._pids),
            priority=task.priority,
            model=base.name,
            method=task.method,
            samples=len(records),
            created_at=time.time(),
        )
        with self._lock:
            TaskFiles(self.root / task_id).create(task, data, status)
            self._lock.notify_all()
        return status

    def status(self, task_id: str, owner: str | None = None) -> TaskStatus:
        """The job's status; UnknownObjectError when there is none (or it is another owner's;
        owner None sees every job)."""
        return self._files(task_id, owner).status()

    def list(self, owner: str | None = None) -> list[TaskStatus]:
        statuses = []
        for folder in self.root.glob("task-*"):
            try:
                statuses.append(TaskFiles(folder).status())
            except (OSError, ValueError):  # one being created just now
                continue
        mine = [s for s in statuses if owner is None or s.owner == owner]
        return sorted(mine, key=lambda s: s.created_at)

    def logs(self, task_id: str, owner: str | None = None, after_step: int = 0) -> list[dict]:
        return self._files(task_id, owner).log(after_step)

    def cancel(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return self._stop(task_id, owner, ASK_CANCEL)

    def suspend(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return self._stop(task_id, owner, ASK_SUSPEND)

    def resume(self, task_id: str, owner: str | None = None) -> TaskStatus:
        with self._lock:
            files = self._files(task_id, owner)
            state = files.status().state
            if state is not TaskState.SUSPENDED:
                raise ObjectInUseError("task_id", f"the job is {state.value}, not suspended")
            status = files.update(state=TaskState.QUEUED)
            self._lock.notify_all()
            return status

    def wait(self, task_id: str, timeout: float | None = None) -> TaskStatus:
        """Block until the job ends (or `timeout` s pass); its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status(task_id)
            if status.state in ENDED or (deadline is not None and time.monotonic() >= deadline):
                return status
            time.sleep(POLL_S)

    def close(self) -> None:
        """Stop the running job at a step boundary, checkpointed and queued for the next start."""
        with self._lock:
            self._closing = True
            worker = self._worker
            if worker is not None:
                worker[0].ask(ASK_SHUTDOWN)
                self._signal(worker[1])
            self._lock.notify_all()
        self._supervisor.join(STOP_WAIT_S + 5)
        if self._throttle is not None:
            self._throttle.close()

    # -- internals --------------------------------------------------------------------------

    def _files(self, task_id: str, owner: str | None) -> TaskFiles:
        if not isinstance(task_id, str) or not task_id.startswith("task-") or "/" in task_id:
            raise UnknownObjectError("task_id", str(task_id))
        files = TaskFiles(self.root / task_id)
        if not files.status_path.is_file():
            raise UnknownObjectError("task_id", task_id)
        if owner is not None and files.status().owner != owner:
            raise UnknownObjectError("task_id", task_id)  # as if it were not there
        return files

    def _stop(self, task_id: str, owner: str | None, ask: str) -> TaskStatus:
        with self._lock:
            files = self._files(task_id, owner)
            state = files.status().state
            if state in ENDED or (ask == ASK_SUSPEND and state is TaskState.SUSPENDED):
                raise ObjectInUseError("task_id", f"the job is already {state.value}")
            if state is TaskState.RUNNING:  # it stops after its step under way
                files.ask(ask)
                worker = self._worker
                if worker is not None and worker[0].folder == files.folder:
                    self._signal(worker[1])
                else:  # run by another manager on this home
                    with contextlib.suppress(ProcessLookupError, KeyError):
                        os.kill(files.status().extra["worker_pid"], signal.SIGTERM)
                return files.status()
            if ask == ASK_CANCEL:
                return files.update(state=TaskState.CANCELLED, finished_at=time.time())
            return files.update(state=TaskState.SUSPENDED)

    def _signal(self, process: subprocess.Popen[bytes]) -> None:
        """Ask the running worker to stop (SIGTERM), unpaused so that it finishes its step."""
        if self._throttle is not None:
            self._throttle.watch(None)
        process.send_signal(signal.SIGTERM)

    def _take_the_runner_lock(self) -> bool:
        """One manager a jobs folder runs the jobs (another OS or script on the same home only
        submits and reads them, and takes over when the runner goes). The new runner queues
        again the jobs its predecessor left running."""
        if not self._runner:
            try:
                fcntl.flock(self._runner_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._runner = True
            for status in self.list():
                if status.state is TaskState.RUNNING:  # its OS stopped under it
                    TaskFiles(self.root / status.id).update(state=TaskState.QUEUED)
        return True

    def _supervise(self) -> None:
        """Start queued jobs one at a time and notice when their workers end."""
        while True:
            with self._lock:
                if self._worker is not None and self._worker[1].poll() is not None:
                    if self._throttle is not None:
                        self._throttle.watch(None)
                    self._reap(*self._worker)
                    self._worker = None
                if self._closing and self._worker is None:
                    self._runner_lock.close()  # the lock goes with it
                    return
                if self._worker is None and not self._closing and self._take_the_runner_lock():
                    queued = [s for s in self.list() if s.state is TaskState.QUEUED]
                    if queued:
                        self._worker = self._start(TaskFiles(self.root / queued[0].id))
                self._lock.wait(POLL_S)

    def _start(self, files: TaskFiles) -> tuple[TaskFiles, subprocess.Popen[bytes]]:
        files.clear_ask()
        files.update(state=TaskState.RUNNING, error=None)
        with files.worker_log.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "llmasos.jobs.worker", str(files.folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                env={**os.environ, "LLMASOS_HOME": str(self.home)},
            )
        files.update(extra={"worker_pid": process.pid})
        if self._throttle is not None:
            self._throttle.watch(process)
        return files, process

    def _reap(self, files: TaskFiles, process: subprocess.Popen[bytes]) -> None:
        """A worker ended; if it did not say how, it ends as it was asked to, or failed (the
        log's tail says why)."""
        status = files.status()
        ask = files.asked()
        if status.state is TaskState.RUNNING and ask in ENDS_AS:  # stopped before it could say
            files.clear_ask()
            ended = time.time() if ask == ASK_CANCEL else None
            files.update(state=ENDS_AS[ask], finished_at=ended)
        elif status.state is TaskState.RUNNING:
            tail = _tail(files.worker_log)
            files.update(
                state=TaskState.FAILED,
                error=f"the worker exited with status {process.returncode}: {tail}",
                finished_at=time.time(),
            )


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no log"
