"""kill -9 of a server mid-load, then a restart on the same home: nothing acknowledged is lost.

In flight at the kill: a training job past its first checkpoint, an OpenAI batch with some lines
answered, and file writes one after another, all under an admin key made while the server ran. After
the restart the key still works, the repository lists the same models, every acknowledged file
reads back byte for byte, the batch ends with every line answered exactly once, and the job
resumes from its checkpoint with no step done twice. (The soak in `make soak` does the long
form; tests/integration/storage/test_crash.py kills a burst of writes on both backends.)
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from llmasos import Client, TaskState
from tests.integration.conftest import seed_home
from tests.integration.test_batches import PREFIX, answers, finished, request, submit
from tests.integration.test_jobs import fact, task, wait_for
from tests.integration.test_server import LLMASOS, start_server, stop_server
from tests.unit.test_kernel import wait_until

pytestmark = pytest.mark.timeout(900)  # the job may make the Hugging Face copy first


def admin_key(home: Path) -> str:
    """A new admin key in `home`'s key store (the running server sees it at once)."""
    made = subprocess.run(
        [LLMASOS, "keys", "create", "--owner", "ops", "--role", "admin"],
        capture_output=True, text=True, check=True, env={**os.environ, "LLMASOS_HOME": str(home)},
    )  # fmt: skip
    return next(w for w in made.stdout.split() if w.startswith("llmk_"))


def write_until_killed(url: str, key: str, acked: dict[str, bytes]) -> None:
    """PUT new files one after another until the server dies; record what it acknowledged."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        for n in itertools.count():
            path, content = f"crash/file-{n}.bin", os.urandom(64) + f"file {n}".encode()
            try:
                if http.put(f"/v1/fs/files/{path}", content=content).status_code in (200, 201):
                    acked[path] = content
            except httpx.HTTPError:
                return  # the kill


def test_nothing_acknowledged_is_lost_across_a_kill_9_mid_load(tmp_path, session_home):
    home = seed_home(tmp_path / "home", session_home)
    data = tmp_path / "zorblat.jsonl"
    data.write_text("".join(json.dumps({"text": fact(n)}) + "\n" for n in ["Ann", "Bob", "Cy"] * 8))
    server, url = start_server(home=home, log=home / "before.log")
    key = admin_key(home)
    bearer = {"Authorization": f"Bearer {key}"}
    lines = [request(f"fact-{n}", f"{PREFIX}{n}:", max_tokens=24) for n in range(16)]
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    with (
        Client(base_url=url, api_key=key) as client,
        httpx.Client(base_url=url, headers=bearer, timeout=30) as http,
    ):
        task_id = client.submit_task(task(data, checkpoint_every=2, output="zorblat:crash"))
        batch = submit(oai, tmp_path, lines)
        models = sorted(m["id"] for m in http.get("/v1/models").json()["data"])
        acked: dict[str, bytes] = {}
        writer = threading.Thread(target=write_until_killed, args=(url, key, acked))
        writer.start()
        wait_for(client, task_id, lambda s: s.checkpoint_step >= 2 and s.step >= 3)
        deadline = time.monotonic() + 300
        while oai.batches.retrieve(batch.id).request_counts.completed < 2:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        wait_until(lambda: len(acked) >= 5)
    os.kill(server.pid, signal.SIGKILL)  # no shutdown at all, writes in flight
    server.wait()
    writer.join()
    server, url = start_server(home=home, log=home / "after.log")
    try:
        oai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        with (
            Client(base_url=url, api_key=key) as client,
            httpx.Client(base_url=url, headers=bearer, timeout=30) as http,
        ):
            assert http.get("/v1/whoami").json() == {"owner": "ops", "role": "admin"}
            assert sorted(m["id"] for m in http.get("/v1/models").json()["data"]) == models
            for path, content in acked.items():
                assert http.get(f"/v1/fs/files/{path}").content == content
            done = finished(oai, batch.id)
            assert done.status == "completed" and done.request_counts.completed == 16
            assert sorted(answers(oai, done.output_file_id)) == sorted(
                x["custom_id"] for x in lines
            )
            job = client.wait_task(task_id, timeout=600)
            assert job.state is TaskState.SUCCEEDED, job.error
            assert [e["step"] for e in client.task_logs(task_id)] == list(range(1, 7))
    finally:
        stop_server(server)
