"""`llmasos shell` against a real server and the default model: every answer is a valid
command whatever the sentence (the grammar), a command the key's role forbids is refused,
an acting command runs only after a yes, and --yes runs a read-only one at once."""

from __future__ import annotations

import shlex
import subprocess

import httpx
import pytest

from llmasos.nlshell.commands import Thing, World, parse_argv
from tests.integration.conftest import seed_home
from tests.integration.test_server import LLMASOS, start_server, stop_server

ADMIN = {"Authorization": "Bearer root"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, session_home, model_path):
    home = seed_home(tmp_path_factory.mktemp("home"), session_home)
    server, url = start_server("--admin-key", "root", home=home)
    yield url
    stop_server(server)


def key(url: str, role: str) -> str:
    body = {"owner": f"{role}-owner", "role": role}
    reply = httpx.post(f"{url}/v1/admin/keys", json=body, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    return reply.json()["key"]


@pytest.fixture(scope="module")
def user(server) -> str:
    return key(server, "user")


def shell(url: str, api_key: str, *args: str, answer: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [LLMASOS, "shell", "--url", url, "--api-key", api_key, *args],
        input=answer, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def long_process(url: str, api_key: str) -> int:
    """A process of the key's that stays until killed (suspended at once)."""
    headers = {"Authorization": f"Bearer {api_key}"}
    body = {"prompt": "Once upon a time", "max_tokens": 400}
    reply = httpx.post(f"{url}/v1/processes", json=body, headers=headers)
    assert reply.status_code == 201, reply.text
    pid = reply.json()["pid"]
    signal = {"signal": "suspend"}
    assert httpx.post(f"{url}/v1/processes/{pid}/signal", json=signal, headers=headers).is_success
    return pid


def state(url: str, pid: int) -> str:
    return httpx.get(f"{url}/v1/processes/{pid}", headers=ADMIN).json()["state"]


@pytest.mark.parametrize(
    "sentence",
    ["show me what is running", "purple monkey dishwasher", "please do the thing with the files",
     "🙂 " * 20, "stop everything now"],
)  # fmt: skip
def test_every_answer_is_one_valid_command_whatever_the_sentence(server, user, sentence):
    pid = long_process(server, user)
    done = shell(server, user, "--dry-run", sentence)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    mine = {"Authorization": f"Bearer {user}"}
    live = [p for p in httpx.get(f"{server}/v1/processes", headers=mine).json()["data"]
            if p["state"] != "terminated"]  # fmt: skip
    models = httpx.get(f"{server}/v1/models", headers=mine).json()["data"]
    world = World(processes=[Thing(str(p["pid"])) for p in live],
                  models=[Thing(m["id"]) for m in models])  # fmt: skip
    program, *argv = shlex.split(line)
    assert program == "llmasos"
    assert parse_argv(argv, world).argv == argv  # raises unless a command the shell knows
    httpx.post(f"{server}/v1/processes/{pid}/signal", json={"signal": "kill"}, headers=ADMIN)


def test_a_command_the_role_forbids_is_refused(server, user):
    reader = key(server, "read-only")
    done = shell(server, user, "is the audit log intact", answer="y\n")
    assert "llmasos audit verify" in done.stdout and done.returncode == 1
    assert "refused: this key's role (user)" in done.stderr
    done = shell(server, reader, "delete old/draft.md", answer="y\n")
    assert "llmasos fs rm old/draft.md" in done.stdout and done.returncode == 1
    assert "refused: this key's role (read-only)" in done.stderr


def test_an_acting_command_runs_only_after_a_yes(server, user):
    pid = long_process(server, user)
    for args, answer in ((["--yes"], "n\n"), ([], "n\n"), ([], "")):
        done = shell(server, user, *args, f"kill {pid}", answer=answer)
        assert f"llmasos kill {pid}" in done.stdout and "Run it?" in done.stdout
        assert done.returncode == 1 and "not run" in done.stderr
        assert state(server, pid) != "terminated"
    done = shell(server, user, f"kill {pid}", answer="y\n")
    assert done.returncode == 0, done.stderr
    assert state(server, pid) == "terminated"


def test_yes_runs_a_read_only_command_at_once(server, user):
    pid = long_process(server, user)
    done = shell(server, user, "--yes", "show me what is running")
    assert done.returncode == 0, done.stderr
    assert "llmasos ps" in done.stdout and "Run it?" not in done.stdout
    assert "PID" in done.stdout and str(pid) in done.stdout  # ps ran, as this key
    httpx.post(f"{server}/v1/processes/{pid}/signal", json={"signal": "kill"}, headers=ADMIN)
