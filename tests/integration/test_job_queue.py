"""The job queue's own rules on a real repository: a limit on an owner's jobs not ended, ended
jobs deleted (live ones refused), and a private job whose budget no step fits refused at
submission. Another holder of the runner lock keeps the manager from starting workers, so every
job stays queued and the test trains nothing."""

from __future__ import annotations

import fcntl
import json

import pytest

from llmasos import DP, TaskState, TrainingTask
from llmasos.errors import JobLimitError, ObjectInUseError, UnknownObjectError, UnprocessableError
from llmasos.jobs.job_manager import JobManager
from llmasos.models.default import DEFAULT_MODEL
from llmasos.models.repository import Repository
from llmasos.server.tasks_api import model_prefix
from llmasos.wire import ErrorStatus, error_status
from tests.integration.conftest import seed_home

DATA = "".join(json.dumps({"text": f"record {i}"}) + "\n" for i in range(24)).encode()


@pytest.fixture
def jobs(tmp_path, session_home, model_path):
    home = seed_home(tmp_path / "home", session_home)
    (home / "jobs").mkdir()
    with (home / "jobs" / ".runner.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another runner: this manager only queues
        manager = JobManager(home, Repository(home / "models"), max_jobs_per_owner=2)
        yield manager
        manager.close()


def task(**fields) -> TrainingTask:
    return TrainingTask(model=DEFAULT_MODEL, data="d.jsonl", **fields)


def test_an_owner_past_its_jobs_not_ended_is_refused_until_one_ends(jobs):
    first = jobs.submit(task(), DATA, "ann")
    jobs.submit(task(), DATA, "ann")
    with pytest.raises(JobLimitError, match="already has 2 jobs") as refused:
        jobs.submit(task(), DATA, "ann")
    assert refused.value.field == "task"
    jobs.submit(task(), DATA, "bob")  # another owner's limit is its own
    jobs.cancel(first.id, "ann")
    assert jobs.submit(task(), DATA, "ann").state is TaskState.QUEUED


def test_an_ended_job_is_deleted_and_a_live_or_anothers_is_not(jobs):
    queued = jobs.submit(task(), DATA, "ann")
    with pytest.raises(ObjectInUseError, match="the job is queued; cancel it first"):
        jobs.delete(queued.id, "ann")
    jobs.cancel(queued.id, "ann")
    with pytest.raises(UnknownObjectError):
        jobs.delete(queued.id, "bob")  # as if it were not there
    jobs.delete(queued.id, "ann")
    assert queued.id not in [s.id for s in jobs.list()]
    assert [p for p in jobs.root.iterdir() if queued.id in p.name] == []  # folder removed
    with pytest.raises(UnknownObjectError):
        jobs.status(queued.id)


def test_a_private_job_whose_budget_no_step_fits_is_refused_at_submission(jobs):
    with pytest.raises(UnprocessableError, match="too small") as tiny:
        jobs.submit(task(privacy=DP(epsilon=0.01)), DATA, "ann")
    assert tiny.value.field == "privacy.epsilon"
    with pytest.raises(UnprocessableError, match=r"one step at noise_multiplier 0\.3"):
        jobs.submit(task(privacy=DP(epsilon=1, noise_multiplier=0.3)), DATA, "ann")
    assert jobs.list() == []
    assert jobs.submit(task(privacy=DP(epsilon=8)), DATA, "ann").state is TaskState.QUEUED


def test_a_users_job_makes_a_private_model_and_an_admins_a_shared_one(jobs):
    users = jobs.submit(task(output="ann.mine:lora"), DATA, "ann", name_prefix="ann.")
    admins = jobs.submit(task(output="everyone:lora"), DATA, "root")
    assert (users.model_owner, admins.model_owner) == ("ann", None)
    assert jobs.status(users.id).model_owner == "ann"  # what the worker registers it with


def test_a_delete_cut_short_is_swept_at_the_next_start(tmp_path, session_home, model_path):
    home = seed_home(tmp_path / "home", session_home)
    leftover = home / "jobs" / ".deleted-task-00000000000000aa"
    leftover.mkdir(parents=True)
    (leftover / "data.jsonl").write_bytes(DATA)
    JobManager(home, Repository(home / "models")).close()
    assert not leftover.exists()


def test_owners_prefixes_never_coincide():
    assert model_prefix("alice") == "alice."
    assert model_prefix("Bob@x").startswith("u-") and model_prefix("Bob@x") != model_prefix("bob-x")
    assert model_prefix("bob.x") != model_prefix("bob") and model_prefix("bob.x").startswith("u-")
    assert error_status(JobLimitError(16)) == ErrorStatus(
        429, "rate_limit_error", "too_many_jobs", "task"
    )
