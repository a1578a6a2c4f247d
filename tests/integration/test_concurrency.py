"""The server under concurrent use, with real llama.cpp engines: spawns racing unloads, and
callers of other models while one model loads slowly."""

from __future__ import annotations

import concurrent.futures
from collections import Counter

import httpx
import pytest
from fastapi.testclient import TestClient

from llmasos.kernel.config import KernelConfig
from llmasos.models.repository import Repository
from llmasos.runtime.factory import EngineOptions, model_manager
from llmasos.server.app import create_app
from llmasos.server.guards import Access
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.integration.test_server import start_server, stop_server
from tests.unit.test_model_manager import gate_loads

ADMIN = {"Authorization": "Bearer root"}


@pytest.fixture
def tiny_server(llmasos_home):
    Repository(llmasos_home / "models").import_file(
        write_tiny_gguf(llmasos_home / "tiny.gguf"), "tiny"
    )
    server, url = start_server("--admin-key", "root", home=llmasos_home)
    yield url
    stop_server(server)


def test_spawns_racing_unloads_200_times_each_complete_or_get_a_clear_error(tiny_server):
    url = tiny_server
    body = {"model": "tiny", "prompt": "the model", "max_tokens": 4, "temperature": 0}

    def complete(_: int) -> int:
        return httpx.post(f"{url}/v1/completions", json=body, timeout=120).status_code

    def unload(_: int) -> int:
        return httpx.post(f"{url}/v1/models/tiny/unload", headers=ADMIN, timeout=120).status_code

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        spawns, unloads = [], []
        for i in range(200):  # interleaved, so that every spawn meets unloads
            spawns.append(pool.submit(complete, i))
            unloads.append(pool.submit(unload, i))
        spawned = Counter(f.result() for f in spawns)
        unloaded = Counter(f.result() for f in unloads)
    assert spawned == {200: 200}  # a lease keeps the model loaded for the whole call
    assert set(unloaded) <= {200, 404, 409}  # done, not loaded, or busy: each a clear answer
    assert unloaded[200] >= 1
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_a_slow_load_freezes_neither_health_nor_ps_nor_another_models_stream(llmasos_home):
    Repository(llmasos_home / "models").import_file(
        write_tiny_gguf(llmasos_home / "tiny.gguf"), "tiny:slow"
    )
    options = EngineOptions(num_slots=2, context_length=512)
    models = model_manager(KernelConfig(max_running=2), options, home=llmasos_home)
    entered, release = gate_loads(models, "tiny:slow")
    models.load(pin=True)  # the default model
    slow_body = {"model": "tiny:slow", "prompt": "x", "max_tokens": 3}
    app = create_app(models, access=Access())
    with TestClient(app) as http, concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(http.post, "/v1/completions", json=slow_body)
        assert entered.wait(60)
        assert http.get("/health").json()["status"] == "ok"
        assert http.get("/v1/processes").status_code == 200
        stream = {"prompt": "The sky is", "max_tokens": 8, "temperature": 0, "stream": True}
        with http.stream("POST", "/v1/completions", json=stream) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and len(lines) > 2
        assert "tiny:slow" not in [m["name"] for m in http.get("/v1/models/loaded").json()["data"]]
        assert not slow.done()  # all of that happened while the load was still under way
        release.set()
        assert slow.result(timeout=120).status_code == 200
