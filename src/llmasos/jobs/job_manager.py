"""The job manager: training jobs as processes of the OS.

A job gets a pid from the OS's pid space, an owner, a priority (background by default) and a
state (queued, running, suspended, succeeded, failed, cancelled). Jobs run one at a time, owners
in turn (the owner whose last job started longest ago first; an owner's own jobs in their order
of submission), each in its own worker process (llmasos.jobs.worker) that one
supervisor thread starts and watches. Suspend and cancel ask the worker to stop after its step
under way; a suspended job resumes from its checkpoint. Everything lives in the jobs folder, so
a job survives the OS: at start, a job that was running (the OS stopped or was killed) is queued
again and resumes from its checkpoint. One manager a jobs folder runs jobs (a file lock); others
on the same home submit, read and signal them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from llmasos.errors import (
    CapabilityError,
    InvalidRequestError,
    JobLimitError,
    ModelExistsError,
    ObjectInUseError,
    UnknownObjectError,
    UnprocessableError,
)
from llmasos.jobs.job_files import ASK_CANCEL, ASK_SHUTDOWN, ASK_SUSPEND, TaskFiles, write_atomic
from llmasos.jobs.privacy_budget import check_budget_apart
from llmasos.jobs.task_data import read_records
from llmasos.jobs.tasks import ENDED, TaskState, TaskStatus, TrainingTask, wait_for_end
from llmasos.jobs.throttle import Throttle
from llmasos.jobs.worker_process import (
    hand_over,
    live_worker_pid,
    log_tail,
    signal_worker_of,
    worker_environment,
)
from llmasos.models.default import DEFAULT_MODEL, canonical_model_name, ensure_default_model
from llmasos.models.manifest import full_name
from llmasos.models.repository import Repository
from llmasos.security.crypto import Sealer

POLL_S = 0.2
STOP_WAIT_S = 120.0  # a worker asked to stop finishes its step first (seconds on a CPU)
MAX_JOBS_PER_OWNER = 16  # jobs of one owner not ended (queued, running or suspended)
_WAITING = (TaskState.QUEUED, TaskState.SUSPENDED)
logger = logging.getLogger(__name__)


class JobManager:
    def __init__(
        self,
        home: Path,
        repository: Repository,
        *,
        pids: Iterator[int] | None = None,
        throttle: Throttle | None = None,
        master_key: bytes | None = None,
        max_jobs_per_owner: int = MAX_JOBS_PER_OWNER,
    ) -> None:
        """Jobs under `home`/jobs, trained on `repository`'s models (their results registered
        there); `throttle` pauses the running job while interactive work runs; `master_key`
        seals each job's data at rest (its worker gets the key on a pipe); an owner may have
        `max_jobs_per_owner` jobs not ended."""
        self.home = home
        self.max_jobs_per_owner = max_jobs_per_owner
        self._master_key = master_key
        self._sealer = Sealer(master_key) if master_key else None
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
        self._last_start: dict[str, float] = {}  # owner -> when this runner last started a job
        for leftover in self.root.glob(".deleted-*"):  # a delete cut short
            shutil.rmtree(leftover, ignore_errors=True)
        self._supervisor = threading.Thread(
            target=self._supervise, name="llmasos-jobs", daemon=True
        )
        self._supervisor.start()

    # -- the API ----------------------------------------------------------------------------

    def submit(
        self, task: TrainingTask, data: bytes, owner: str, *, name_prefix: str = ""
    ) -> TaskStatus:
        """Queue `task` on `data` for `owner`; refused up front when the data, the model or the
        output name is bad or taken. With `name_prefix`, the output's name must start with it,
        and the model it makes is the owner's private model (a user's); without, it is shared
        (an admin's)."""
        try:
            records = read_records(data)
        except InvalidRequestError as error:  # well-formed JSON whose records are bad
            raise UnprocessableError(error.field, error.reason) from None
        check_budget_apart(task, len(records), worker_environment(self.home))
        base = self._base_model(task.model)
        task_id = f"task-{secrets.token_hex(8)}"
        output = full_name(task.output or f"{name_prefix}{task_id}:lora")
        if not output.startswith(name_prefix):
            raise CapabilityError("output", f"your models' names start with {name_prefix!r}")
        task = dataclasses.replace(task, model=base, output=output)
        status = TaskStatus(
            id=task_id,
            state=TaskState.QUEUED,
            owner=owner,
            pid=next(self._pids),
            priority=task.priority,
            model=base,
            method=task.method,
            samples=len(records),
            created_at=time.time(),
            model_owner=owner if name_prefix else None,
        )
        with self._lock:
            unended = [s for s in self.list() if s.state not in ENDED]
            if sum(s.owner == owner for s in unended) >= self.max_jobs_per_owner:
                raise JobLimitError(self.max_jobs_per_owner)
            taken = {s.output_model for s in unended}
            if output in self.repository or output in taken:  # reserved until the job ends
                raise ModelExistsError(output)
            status.output_model = output
            TaskFiles(self.root / task_id, self._sealer).create(task, data, status)
            self._lock.notify_all()
        return status

    def _base_model(self, name: str) -> str:
        """The canonical name of the base model to train (the default one imported if need
        be); UnknownModelError naming `model` when there is none."""
        canonical = canonical_model_name(name)
        if canonical == DEFAULT_MODEL:
            ensure_default_model(self.repository)
        return self.repository.show(canonical).name

    def status(self, task_id: str, owner: str | None = None) -> TaskStatus:
        """The job's status; UnknownObjectError when there is none (or it is another owner's;
        owner None sees every job)."""
        with _gone_as_unknown(task_id):
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
        with _gone_as_unknown(task_id):
            return self._files(task_id, owner).log(after_step)

    def cancel(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return self._stop(task_id, owner, ASK_CANCEL)

    def suspend(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return self._stop(task_id, owner, ASK_SUSPEND)

    def resume(self, task_id: str, owner: str | None = None) -> TaskStatus:
        with self._lock:
            files = self._files(task_id, owner)
            status = files.update(only_from=(TaskState.SUSPENDED,), state=TaskState.QUEUED)
            if status is None:
                state = files.status().state.value
                raise ObjectInUseError("task_id", f"the job is {state}, not suspended")
            self._lock.notify_all()
            return status

    def delete(self, task_id: str, owner: str | None = None) -> None:
        """Remove an ended job: its folder (data, status, step log). Its trained model stays
        in the repository. ObjectInUseError while the job has not ended (cancel it first)."""
        with self._lock:
            files = self._files(task_id, owner)
            state = files.status().state
            if state not in ENDED:
                raise ObjectInUseError("task_id", f"the job is {state.value}; cancel it first")
            mine = self._worker is not None and self._worker[0].folder == files.folder
            if mine or live_worker_pid(files) is not None:
                raise ObjectInUseError("task_id", "its worker is still finishing; retry shortly")
            doomed = self.root / f".deleted-{task_id}"  # gone from every listing at once
            files.folder.rename(doomed)
        try:
            shutil.rmtree(doomed)
        except OSError as error:  # the next start sweeps it
            logger.warning("job %s: its folder was not removed: %s", task_id, error)

    def wait(self, task_id: str, timeout: float | None = None) -> TaskStatus:
        """Block until the job ends (or `timeout` s pass); its status."""
        return wait_for_end(self.status, task_id, timeout, POLL_S)

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
            waiting = (TaskState.QUEUED,) if ask == ASK_SUSPEND else _WAITING
            if ask == ASK_CANCEL:
                status = files.update(
                    only_from=waiting, state=TaskState.CANCELLED, finished_at=time.time()
                )
            else:
                status = files.update(only_from=waiting, state=TaskState.SUSPENDED)
            if status is not None:
                return status
            status = files.status()
            if status.state is not TaskState.RUNNING:
                raise ObjectInUseError("task_id", f"the job is already {status.state.value}")
            files.ask(ask)  # it stops after its step under way
            worker = self._worker
            if worker is not None and worker[0].folder == files.folder:
                self._signal(worker[1])
            else:  # run by another manager on this home
                signal_worker_of(files)
            return files.status()

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
                    TaskFiles(self.root / status.id).end_as_asked(ASK_SHUTDOWN)
        return True

    def _supervise(self) -> None:
        """Start queued jobs one at a time and notice when their workers end."""
        while True:
            with self._lock:
                try:
                    if self._tick():
                        return
                except Exception:  # one bad job folder must not stop every later job
                    logger.exception("the job supervisor failed a round")
                self._lock.wait(POLL_S)

    def _tick(self) -> bool:
        """One round of the supervisor (under the lock); True when it is to end."""
        if self._worker is not None and self._worker[1].poll() is not None:
            if self._throttle is not None:
                self._throttle.watch(None)
            worker, self._worker = self._worker, None
            self._reap(*worker)
        if self._closing and self._worker is None:
            self._runner_lock.close()  # the lock goes with it
            return True
        if self._worker is None and not self._closing and self._take_the_runner_lock():
            for status in fair_order(self.list(), self._last_start):
                if self._start(TaskFiles(self.root / status.id)):
                    break
        return False

    def _start(self, files: TaskFiles) -> bool:
        """Start the job's worker, if the job is still queued; whether it started."""
        status = files.update(only_from=(TaskState.QUEUED,), state=TaskState.RUNNING, error=None)
        if status is None:
            return False
        self._last_start[status.owner] = time.time()
        files.clear_ask()
        command = [sys.executable, "-m", "llmasos.jobs.worker", str(files.folder), str(os.getpid())]
        try:
            with files.worker_log.open("ab") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.PIPE,
                    start_new_session=True,  # the terminal's Ctrl-C is the OS's, not the job's
                    env=worker_environment(self.home),
                )
            hand_over(process, self._master_key or b"")
        except OSError as error:
            files.update(state=TaskState.FAILED, error=f"the worker did not start: {error}")
            return False
        write_atomic(files.folder / "worker.pid", str(process.pid).encode())
        self._worker = (files, process)
        if self._throttle is not None:
            self._throttle.watch(process)
        return True

    def _reap(self, files: TaskFiles, process: subprocess.Popen[bytes]) -> None:
        """A worker ended; if it did not say how, it ends as it was asked to, or failed (its
        log, in the job's folder, says why)."""
        if not files.status_path.is_file() or files.status().state is not TaskState.RUNNING:
            return
        if files.asked() is not None:  # stopped before it could say
            files.end_as_asked(ASK_SHUTDOWN)
            return
        logger.warning("job %s: worker exited %s: %s", files.task_id, process.returncode,
                       log_tail(files.worker_log))  # fmt: skip
        error = f"the training worker exited with status {process.returncode}"
        files.update(state=TaskState.FAILED, error=error, finished_at=time.time())


def fair_order(
    statuses: list[TaskStatus], started: dict[str, float] | None = None
) -> list[TaskStatus]:
    """The queued jobs in the order they should start: owners in turn (the owner whose last
    job started longest ago, or never, first; `started` adds starts the statuses no longer
    show), each owner's jobs in submission order."""
    last_start = dict(started or {})
    for status in statuses:
        if status.started_at is not None:
            last_start[status.owner] = max(last_start.get(status.owner, 0.0), status.started_at)
    queued = [s for s in statuses if s.state is TaskState.QUEUED]
    return sorted(queued, key=lambda s: (last_start.get(s.owner, 0.0), s.created_at))


@contextlib.contextmanager
def _gone_as_unknown(task_id: str) -> Iterator[None]:
    """A job deleted while it is being read is a job that is not there."""
    try:
        yield
    except FileNotFoundError:
        raise UnknownObjectError("task_id", task_id) from None
