"""The design's job functions, without a Client:

    task_id = llmasos.submit_task(llmasos.TrainingTask(model=..., data="train.jsonl"))
    llmasos.get_task_status(task_id)      # .state .progress .step .loss .epsilon .error ...
    llmasos.cancel_task(task_id)
    llmasos.delete_task(task_id)          # an ended job's data and log

They reach the server at $LLMASOS_URL (with $LLMASOS_API_KEY) when it is set, else run jobs on
this machine under $LLMASOS_HOME (a worker process per job; jobs of an ended Python process go
on, from their checkpoint, the next time jobs are reached here).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from llmasos.errors import InvalidRequestError
from llmasos.jobs.job_manager import JobManager
from llmasos.jobs.remote_jobs import RemoteJobs
from llmasos.jobs.tasks import TaskStatus, TrainingTask
from llmasos.models.repository import Repository
from llmasos.security.crypto import parse_master_key
from llmasos.settings import Settings

LOCAL_OWNER = "local"  # the owner of an in-process client's processes, files, memory and jobs
Jobs = JobManager | RemoteJobs
_default: Jobs | None = None
_default_lock = threading.Lock()


def local_jobs(pids: Iterator[int] | None = None) -> JobManager:
    """A job manager over this machine's repository and jobs folder."""
    settings = Settings.from_environment()
    key = parse_master_key(settings.master_key) if settings.master_key else None
    home = settings.home
    return JobManager(home, Repository(home / "models"), pids=pids, master_key=key)


def default_jobs() -> Jobs:
    global _default
    with _default_lock:
        if _default is None:
            url = os.environ.get("LLMASOS_URL")
            if url:
                key = os.environ.get("LLMASOS_API_KEY")
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                _default = RemoteJobs(httpx.Client(base_url=url, headers=headers, timeout=60))
            else:
                _default = local_jobs()
                atexit.register(_default.close)  # the running job checkpoints first
        return _default


def read_data(task: TrainingTask) -> bytes:
    """The bytes of the task's data file; InvalidRequestError naming `data` when unreadable."""
    try:
        return Path(task.data).expanduser().read_bytes()
    except OSError as error:
        raise InvalidRequestError("data", f"cannot read {task.data}: {error.strerror}") from None


class TaskMethods:
    """The job methods of llmasos.Client and of the module-level functions."""

    def _jobs(self) -> Jobs:
        raise NotImplementedError

    def submit_task(self, task: TrainingTask) -> str:
        """Queue a training job on the data file `task.data`; its task id."""
        return self._jobs().submit(task, read_data(task), LOCAL_OWNER).id

    def get_task_status(self, task_id: str) -> TaskStatus:
        """state, progress, step, loss, epsilon, eta_s, error, output_model, ..."""
        return self._jobs().status(task_id)

    def cancel_task(self, task_id: str) -> TaskStatus:
        return self._jobs().cancel(task_id)

    def suspend_task(self, task_id: str) -> TaskStatus:
        """Stop the job at a checkpoint (after its step under way); resume_task goes on."""
        return self._jobs().suspend(task_id)

    def resume_task(self, task_id: str) -> TaskStatus:
        return self._jobs().resume(task_id)

    def delete_task(self, task_id: str) -> None:
        """Remove an ended job's data and log (its trained model stays)."""
        self._jobs().delete(task_id)

    def tasks(self) -> list[TaskStatus]:
        return self._jobs().list()

    def task_logs(self, task_id: str, after_step: int = 0) -> list[dict]:
        """The job's step log (step, epoch, loss, epsilon, time) past `after_step`."""
        return self._jobs().logs(task_id, after_step=after_step)

    def wait_task(self, task_id: str, timeout: float | None = None) -> TaskStatus:
        """Block until the job ends (or `timeout` s pass); its status."""
        return self._jobs().wait(task_id, timeout)


class _Default(TaskMethods):
    def _jobs(self) -> Jobs:
        return default_jobs()


_functions = _Default()
submit_task = _functions.submit_task
get_task_status = _functions.get_task_status
cancel_task = _functions.cancel_task
suspend_task = _functions.suspend_task
resume_task = _functions.resume_task
delete_task = _functions.delete_task
