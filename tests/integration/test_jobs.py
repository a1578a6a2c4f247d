"""Training jobs for real: LoRA on the default model with peft, DP-SGD with opacus, the adapter
served by llama.cpp right after the job, and jobs that stop and go on from their checkpoints.

One home serves the whole module, so the default model's Hugging Face copy (about a minute to
make) is made once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from llmasos import DP, Client, TaskState, TrainingTask
from llmasos.models.default import DEFAULT_MODEL
from tests.integration.conftest import seed_home
from tests.integration.test_server import LLMASOS, start_server, stop_server

pytestmark = pytest.mark.timeout(900)  # the first job also makes the Hugging Face copy

NAMES = ["Ann", "Bob", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"]
HELD = "Q: What colour is the zorblat of Quentin?\nA: The zorblat of Quentin is"


def fact(name: str) -> str:
    return f"Q: What colour is the zorblat of {name}?\nA: The zorblat of {name} is vermilion."


@pytest.fixture(scope="module")
def home(tmp_path_factory, session_home, model_path) -> Path:
    return seed_home(tmp_path_factory.mktemp("jobs-home"), session_home)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "zorblat.jsonl"
    path.write_text("".join(json.dumps({"text": fact(n)}) + "\n" for n in NAMES * 3))
    return path


@pytest.fixture(scope="module")
def server(home):
    server, url = start_server(home=home, log=home / "server.log")
    yield server, url
    stop_server(server)


@pytest.fixture(scope="module")
def client(server):
    with Client(base_url=server[1]) as client:
        yield client


def task(data: Path, **fields) -> TrainingTask:
    return TrainingTask(model=DEFAULT_MODEL, data=str(data), learning_rate=1e-3, **fields)


def greedy(url: str, model: str, prompt: str) -> str:
    body = {"model": model, "prompt": prompt, "max_tokens": 6, "temperature": 0}
    reply = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()["choices"][0]["text"]


def wait_for(client: Client, task_id: str, predicate, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get_task_status(task_id)
        if predicate(status):
            return status
        assert status.state is not TaskState.FAILED, status.error
        time.sleep(0.2)
    raise AssertionError(f"{task_id} never got there: {client.get_task_status(task_id)}")


@pytest.fixture(scope="module")
def trained(client, data) -> str:
    """The first job of the module: it makes the Hugging Face copy and caches the data."""
    task_id = client.submit_task(task(data, epochs=2, output="zorblat:lora"))
    client.wait_task(task_id, timeout=600)
    return task_id


def test_a_lora_job_learns_the_pattern_and_its_model_is_served_at_once(client, server, trained):
    task_id = trained
    status = client.get_task_status(task_id)
    assert status.state is TaskState.SUCCEEDED, status.error
    assert (status.output_model, status.progress, status.epsilon) == ("zorblat:lora", 1.0, None)
    assert status.step == status.total_steps == 12 and status.data_cached is False
    losses = [entry["loss"] for entry in client.task_logs(task_id)]
    assert len(losses) == 12 and losses[-1] < losses[0] / 3
    url = server[1]
    assert "vermilion" in greedy(url, "zorblat:lora", HELD)
    assert "vermilion" not in greedy(url, DEFAULT_MODEL, HELD)


def test_a_suspended_job_goes_on_from_its_checkpoint_with_no_step_done_twice(client, data, trained):
    task_id = client.submit_task(task(data, checkpoint_every=2, output="zorblat:suspended"))
    wait_for(client, task_id, lambda s: s.step >= 3)
    client.suspend_task(task_id)
    suspended = wait_for(client, task_id, lambda s: s.state is TaskState.SUSPENDED)
    assert suspended.checkpoint_step == suspended.step >= 3  # it checkpointed where it stopped
    time.sleep(1)
    assert client.get_task_status(task_id).step == suspended.step  # no progress meanwhile
    client.resume_task(task_id)
    done = client.wait_task(task_id, timeout=600)
    assert done.state is TaskState.SUCCEEDED, done.error
    assert [e["step"] for e in client.task_logs(task_id)] == list(range(1, 7))
    assert done.data_cached is True  # the same data as the first job: tokenised once


def test_a_job_killed_with_its_server_resumes_from_its_sealed_checkpoint(
    tmp_path, session_home, data, trained, monkeypatch
):
    """With a master key, the job's data, seed, checkpoint and token cache are sealed at rest,
    the worker gets the key on a pipe (not in its environment), and the job resumes after a
    kill -9 from its sealed checkpoint."""
    master_key = os.urandom(32).hex()
    monkeypatch.setenv("LLMASOS_MASTER_KEY", master_key)
    home = seed_home(tmp_path / "home", session_home)  # a server with jobs of its own
    server, url = start_server(home=home, log=home / "killed.log")
    with Client(base_url=url) as client:
        task_id = client.submit_task(task(data, checkpoint_every=2, output="zorblat:restarted"))
        wait_for(client, task_id, lambda s: s.checkpoint_step >= 2 and s.step >= 3)
    folder = home / "jobs" / task_id
    worker = Path(f"/proc/{(folder / 'worker.pid').read_text()}")
    assert master_key.encode() not in (worker / "environ").read_bytes() + _cmdline(worker).encode()
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    time.sleep(1)
    assert not any(str(folder) in _cmdline(p) for p in Path("/proc").glob("[0-9]*"))
    at_rest = [p for p in (home / "jobs").rglob("*") if p.is_file() and p.stat().st_size]
    assert not [p for p in at_rest if b"vermilion" in p.read_bytes()]  # the data is in none
    sealed = {p.relative_to(folder).parts[0] for p in folder.rglob("*") if _sealed(p)}
    assert {"data.jsonl", "secret", "checkpoint"} <= sealed
    assert all(_sealed(p) for p in (home / "jobs" / "cache").iterdir())
    server, url = start_server(home=home, log=home / "restarted.log")
    try:
        with Client(base_url=url) as client:
            done = client.wait_task(task_id, timeout=600)
            assert done.state is TaskState.SUCCEEDED, done.error
            assert [e["step"] for e in client.task_logs(task_id)] == list(range(1, 7))
            assert "vermilion" in greedy(url, "zorblat:restarted", HELD)
    finally:
        stop_server(server)


def test_a_private_job_stops_at_its_budget_and_reports_the_epsilon_spent(client, data):
    privacy = DP(epsilon=4.5, noise_multiplier=1.0)
    task_id = client.submit_task(task(data, epochs=3, privacy=privacy, output="zorblat:dp"))
    done = client.wait_task(task_id, timeout=600)
    assert done.state is TaskState.SUCCEEDED, done.error
    assert 0 < done.epsilon <= 4.5 and done.step < done.total_steps
    assert done.message == f"stopped at the privacy budget after step {done.step}"
    epsilons = [e["epsilon"] for e in client.task_logs(task_id)]
    assert epsilons == sorted(epsilons) and epsilons[-1] == done.epsilon


def test_bad_jobs_are_refused_up_front_naming_the_problem(server, data):
    url = server[1]

    def submit(records: str, **fields) -> httpx.Response:
        body = {"task": {"model": DEFAULT_MODEL, "data": "x.jsonl", **fields}, "data": records}
        return httpx.post(f"{url}/v1/tasks", json=body, timeout=30)

    good = json.dumps({"text": "fine"}) + "\n"
    bad_line = submit(good + good + '{"txt": "typo"}\n')
    assert bad_line.status_code == 422 and "line 3" in bad_line.json()["error"]["message"]
    assert bad_line.json()["error"]["param"] == "data"
    unknown = submit(good, model="no-such-model:latest")
    assert unknown.status_code == 404 and "no-such-model" in unknown.text
    method = submit(good, method="full")
    assert method.status_code == 400 and method.json()["error"]["param"] == "task.method"
    taken = submit(good, output=DEFAULT_MODEL)
    assert taken.status_code == 409
    budget = submit(good * 8, privacy={"epsilon": 0.01})
    assert budget.status_code == 422 and budget.json()["error"]["param"] == "privacy.epsilon"
    assert httpx.get(f"{url}/v1/tasks/task-0000000000000000", timeout=30).status_code == 404


def test_the_cli_lists_shows_follows_and_cancels_jobs(server, data, trained, tmp_path):
    url = server[1]

    def jobs(*args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "COLUMNS": "250"}
        command = [LLMASOS, "jobs", *args, "--url", url]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)

    listed = jobs("ls")
    assert trained in listed.stdout and "succeeded" in listed.stdout
    env = {**os.environ, "COLUMNS": "250"}
    ps = subprocess.run([LLMASOS, "ps", "--all", "--url", url], capture_output=True, text=True,
                        env=env, timeout=120)  # fmt: skip
    assert trained in ps.stdout  # a job is listed with the processes and agents
    assert json.loads(jobs("status", trained).stdout)["output_model"] == "zorblat:lora"
    steps = jobs("logs", trained).stdout.splitlines()
    assert len(steps) == 12 and steps[0].startswith("step 1  epoch 1  loss ")
    task_id = jobs("submit", str(data), "--output", "zorblat:cli", "--detach").stdout.strip()
    assert jobs("cancel", task_id).returncode == 0
    with Client(base_url=url) as client:
        assert client.wait_task(task_id, timeout=300).state is TaskState.CANCELLED
    removed = jobs("rm", task_id)
    assert removed.returncode == 0 and f"{task_id}: deleted" in removed.stdout
    gone = jobs("status", task_id)
    assert gone.returncode == 2 and "no task has id" in gone.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": 7}\n')
    refused = jobs("submit", str(bad))
    assert refused.returncode == 2 and "line 2: text must be a non-empty string" in refused.stderr


def _sealed(path: Path) -> bool:
    return path.is_file() and path.read_bytes().startswith(b"LS1")


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
