"""Isolation on every route, generated from the server's own route table (its OpenAPI
document): owner B's request on owner A's objects is refused (404 or 403) or answers with B's
own objects only, never A's; admin routes refuse B. A route added later that this table does
not classify fails the test, so every route is looked at when it is added."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gguf import GGUFReader

from llmasos.models.default import DEFAULT_MODEL
from llmasos.models.repository import Repository
from tests.integration.conftest import seed_home
from tests.integration.test_server import start_server, stop_server
from tests.unit.test_kernel import wait_until
from tests.unit.test_repository_adapters import write_adapter

ADMIN = {"Authorization": "Bearer root"}
SECRET = "ALICE-SECRET-4d1c"  # in every object of alice's; never in a reply to bob
LONG = 400
MODEL = DEFAULT_MODEL
PRIVATE = "alice.secret-4d1c:lora"  # alice's private model, as her training job would make it


@dataclass(frozen=True)
class Objects:
    url: str
    alice: dict[str, str]
    bob: dict[str, str]
    process: int
    agent: int
    batch_file: str
    batch: str
    task: str
    file: str = "~alice/notes.txt"


def null_adapter(base: Path, path: Path) -> Path:
    """A LoRA adapter over `base`'s first q projection that changes nothing (its B is 0)."""
    shape = next(t.shape for t in GGUFReader(base).tensors if t.name == "blk.0.attn_q.weight")
    return write_adapter(path, "gemma3", shape=(int(shape[0]), int(shape[1])), b=0.0)


def key_for(url: str, owner: str) -> dict[str, str]:
    reply = httpx.post(f"{url}/v1/admin/keys", json={"owner": owner, "role": "user"}, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['key']}"}


@pytest.fixture(scope="module")
def objects(tmp_path_factory, session_home, model_path):
    home = seed_home(tmp_path_factory.mktemp("home"), session_home)
    adapter = null_adapter(model_path, tmp_path_factory.mktemp("adapter") / "a.gguf")
    Repository(home / "models").import_adapter(adapter, PRIVATE, MODEL, owner="alice")
    server, url = start_server("--admin-key", "root", home=home)
    alice, bob = key_for(url, "alice"), key_for(url, "bob")
    loaded = httpx.post(f"{url}/v1/models/{PRIVATE}/load", headers=alice, timeout=120)
    assert loaded.status_code == 200, loaded.text
    spawned = httpx.post(
        f"{url}/v1/processes", json={"prompt": SECRET, "max_tokens": LONG}, headers=alice
    )
    pid = spawned.json()["pid"]
    httpx.post(f"{url}/v1/processes/{pid}/signal", json={"signal": "suspend"}, headers=alice)
    task = {"task": SECRET, "instructions": SECRET, "max_steps": 1, "max_tokens_per_step": 4}
    agent = httpx.post(f"{url}/v1/agents", json=task, headers=alice).json()["pid"]
    wait_until(lambda: httpx.get(f"{url}/v1/agents/{agent}", headers=alice).json()["result"], 120)
    file = "~alice/notes.txt"
    assert httpx.put(f"{url}/v1/fs/files/{file}", content=SECRET, headers=alice).is_success
    memory = {"text": SECRET}
    assert httpx.put(f"{url}/v1/agent-memory/core/persona", json=memory, headers=alice).is_success
    assert httpx.post(f"{url}/v1/agent-memory/archival", json=memory, headers=alice).is_success
    assert httpx.post(
        f"{url}/v1/agent-memory/recall", json={"role": "user", "text": SECRET}, headers=alice
    ).is_success
    line = {"custom_id": SECRET, "method": "POST", "url": "/v1/completions",
            "body": {"prompt": SECRET, "max_tokens": 1}}  # fmt: skip
    files = {"file": ("in.jsonl", json.dumps(line).encode())}
    batch_file = httpx.post(
        f"{url}/v1/files", files=files, data={"purpose": "batch"}, headers=alice
    ).json()["id"]
    batch = httpx.post(
        f"{url}/v1/batches", json={"input_file_id": batch_file, "endpoint": "/v1/completions"},
        headers=alice,
    ).json()["id"]  # fmt: skip
    job = {"task": {"model": MODEL, "data": SECRET}, "data": json.dumps({"text": SECRET})}
    task = httpx.post(f"{url}/v1/tasks", json=job, headers=alice).json()["id"]
    httpx.post(f"{url}/v1/tasks/{task}/suspend", headers=alice)
    yield Objects(url, alice, bob, pid, agent, batch_file, batch, task)
    stop_server(server)


# How bob tries each route on alice's objects: (path with alice's ids, a JSON body or None).
Attempt = Callable[[Objects], tuple[str, dict | None]]
OBJECT = "refused"  # names alice's object: 404 or 403
OWN = "own"  # scoped to the caller: bob's own (empty) objects, never alice's
SHARED = "shared"  # the models and server facts every key may see
ADMIN_ONLY = "admin"  # 403 for a user key

ROUTES: dict[tuple[str, str], tuple[str, Attempt]] = {
    ("GET", "/v1/processes/{pid}"): (OBJECT, lambda o: (f"/v1/processes/{o.process}", None)),
    ("POST", "/v1/processes/{pid}/signal"): (
        OBJECT, lambda o: (f"/v1/processes/{o.process}/signal", {"signal": "kill"})),
    ("POST", "/v1/processes/{pid}/fork"): (
        OBJECT, lambda o: (f"/v1/processes/{o.process}/fork", {"n": 1})),
    ("GET", "/v1/processes/{pid}/events"): (
        OBJECT, lambda o: (f"/v1/processes/{o.process}/events", None)),
    ("GET", "/v1/agents/{pid}"): (OBJECT, lambda o: (f"/v1/agents/{o.agent}", None)),
    ("DELETE", "/v1/agents/{pid}"): (OBJECT, lambda o: (f"/v1/agents/{o.agent}", None)),
    ("GET", "/v1/agents/{pid}/trace"): (OBJECT, lambda o: (f"/v1/agents/{o.agent}/trace", None)),
    ("GET", "/v1/agents/{pid}/events"): (
        OBJECT, lambda o: (f"/v1/agents/{o.agent}/events", None)),
    ("GET", "/v1/fs/files/{path}"): (OBJECT, lambda o: (f"/v1/fs/files/{o.file}", None)),
    ("PUT", "/v1/fs/files/{path}"): (OBJECT, lambda o: (f"/v1/fs/files/{o.file}", None)),
    ("DELETE", "/v1/fs/files/{path}"): (OBJECT, lambda o: (f"/v1/fs/files/{o.file}", None)),
    ("GET", "/v1/fs/stat/{path}"): (OBJECT, lambda o: (f"/v1/fs/stat/{o.file}", None)),
    ("GET", "/v1/fs/history/{path}"): (OBJECT, lambda o: (f"/v1/fs/history/{o.file}", None)),
    ("GET", "/v1/fs/diff/{path}"): (
        OBJECT, lambda o: (f"/v1/fs/diff/{o.file}?from_version=1", None)),
    ("POST", "/v1/fs/rollback/{path}"): (
        OBJECT, lambda o: (f"/v1/fs/rollback/{o.file}", {"version": 1})),
    ("POST", "/v1/fs/move"): (
        OBJECT, lambda o: ("/v1/fs/move", {"source": o.file, "destination": "~bob/got.txt"})),
    ("POST", "/v1/fs/grants"): (
        OBJECT, lambda o: ("/v1/fs/grants", {"prefix": "~alice/", "to": "bob"})),
    ("DELETE", "/v1/fs/grants"): (OWN, lambda o: ("/v1/fs/grants?prefix=~alice/&to=bob", None)),
    ("GET", "/v1/fs/list"): (OWN, lambda o: ("/v1/fs/list?prefix=~alice/", None)),
    ("GET", "/v1/fs/usage"): (OWN, lambda o: ("/v1/fs/usage", None)),
    ("GET", "/v1/fs/grants"): (OWN, lambda o: ("/v1/fs/grants?prefix=~alice/", None)),
    ("POST", "/v1/agent-memory/index"): (
        OBJECT, lambda o: ("/v1/agent-memory/index", {"path": o.file})),
    ("GET", "/v1/agent-memory/core"): (OWN, lambda o: ("/v1/agent-memory/core", None)),
    ("PUT", "/v1/agent-memory/core/{label}"): (
        OWN, lambda o: ("/v1/agent-memory/core/persona", {"text": "bob"})),
    ("POST", "/v1/agent-memory/archival"): (
        OWN, lambda o: ("/v1/agent-memory/archival", {"text": "bob"})),
    ("POST", "/v1/agent-memory/recall"): (
        OWN, lambda o: ("/v1/agent-memory/recall", {"role": "user", "text": "bob"})),
    ("GET", "/v1/agent-memory/recall"): (OWN, lambda o: ("/v1/agent-memory/recall", None)),
    ("POST", "/v1/agent-memory/search"): (
        OWN, lambda o: ("/v1/agent-memory/search", {"query": SECRET})),
    ("POST", "/v1/agent-memory/forget"): (
        OWN, lambda o: ("/v1/agent-memory/forget", {"keys": [1, 2, 3]})),
    ("GET", "/v1/processes"): (OWN, lambda o: ("/v1/processes", None)),
    ("POST", "/v1/processes"): (OWN, lambda o: ("/v1/processes", {"prompt": "b", "max_tokens": 1})),
    ("GET", "/v1/agents"): (OWN, lambda o: ("/v1/agents?all=true", None)),
    ("POST", "/v1/agents"): (OWN, lambda o: ("/v1/agents", {"task": "b", "instructions": "b",
                                                             "max_steps": 1,
                                                             "max_tokens_per_step": 1})),
    ("GET", "/v1/files/{file_id}"): (OBJECT, lambda o: (f"/v1/files/{o.batch_file}", None)),
    ("GET", "/v1/files/{file_id}/content"): (
        OBJECT, lambda o: (f"/v1/files/{o.batch_file}/content", None)),
    ("DELETE", "/v1/files/{file_id}"): (OBJECT, lambda o: (f"/v1/files/{o.batch_file}", None)),
    ("POST", "/v1/files"): (OWN, lambda o: ("/v1/files", None)),
    ("GET", "/v1/files"): (OWN, lambda o: ("/v1/files", None)),
    ("POST", "/v1/batches"): (OBJECT, lambda o: ("/v1/batches", {
        "input_file_id": o.batch_file, "endpoint": "/v1/completions"})),
    ("GET", "/v1/batches"): (OWN, lambda o: ("/v1/batches", None)),
    ("GET", "/v1/batches/{batch_id}"): (OBJECT, lambda o: (f"/v1/batches/{o.batch}", None)),
    ("POST", "/v1/batches/{batch_id}/cancel"): (
        OBJECT, lambda o: (f"/v1/batches/{o.batch}/cancel", None)),
    ("POST", "/v1/tasks"): (OWN, lambda o: ("/v1/tasks", {
        "task": {"model": MODEL, "data": "x", "method": "bogus"}, "data": "{}"})),
    ("GET", "/v1/tasks"): (OWN, lambda o: ("/v1/tasks", None)),
    ("GET", "/v1/tasks/{task_id}"): (OBJECT, lambda o: (f"/v1/tasks/{o.task}", None)),
    ("GET", "/v1/tasks/{task_id}/logs"): (OBJECT, lambda o: (f"/v1/tasks/{o.task}/logs", None)),
    ("POST", "/v1/tasks/{task_id}/cancel"): (
        OBJECT, lambda o: (f"/v1/tasks/{o.task}/cancel", None)),
    ("POST", "/v1/tasks/{task_id}/suspend"): (
        OBJECT, lambda o: (f"/v1/tasks/{o.task}/suspend", None)),
    ("POST", "/v1/tasks/{task_id}/resume"): (
        OBJECT, lambda o: (f"/v1/tasks/{o.task}/resume", None)),
    ("DELETE", "/v1/tasks/{task_id}"): (OBJECT, lambda o: (f"/v1/tasks/{o.task}", None)),
    ("GET", "/v1/stats"): (OWN, lambda o: ("/v1/stats", None)),
    ("GET", "/v1/memory"): (OWN, lambda o: ("/v1/memory", None)),
    ("POST", "/v1/completions"): (OWN, lambda o: ("/v1/completions", {"prompt": "b",
                                                                      "max_tokens": 1})),
    ("POST", "/v1/chat/completions"): (OWN, lambda o: ("/v1/chat/completions", {
        "messages": [{"role": "user", "content": "b"}], "max_tokens": 1})),
    ("POST", "/v1/embeddings"): (OWN, lambda o: ("/v1/embeddings", {"input": "b"})),
    ("POST", "/v1/audio/transcriptions"): (OWN, lambda o: ("/v1/audio/transcriptions", None)),
    ("POST", "/v1/audio/speech"): (OWN, lambda o: ("/v1/audio/speech", {
        "model": "tts-1", "voice": "alloy", "input": "b"})),
    ("GET", "/v1/models"): (SHARED, lambda o: ("/v1/models", None)),
    ("GET", "/v1/models/loaded"): (SHARED, lambda o: ("/v1/models/loaded", None)),
    ("GET", "/v1/models/{name}"): (OBJECT, lambda o: (f"/v1/models/{PRIVATE}", None)),
    ("POST", "/v1/models/{name}/load"): (OBJECT, lambda o: (f"/v1/models/{PRIVATE}/load", None)),
    ("GET", "/health"): (SHARED, lambda o: ("/health", None)),
    ("GET", "/v1/whoami"): (OWN, lambda o: ("/v1/whoami", None)),
    ("GET", "/v1/watch"): (OWN, lambda o: ("/v1/watch?once=true", None)),
    ("GET", "/v1/shell/translate"): (OWN, lambda o: ("/v1/shell/translate?sentence=stop+it", None)),
    ("POST", "/v1/processes/{pid}/priority"): (
        OBJECT, lambda o: (f"/v1/processes/{o.process}/priority", {"priority": 5})),
    ("GET", "/metrics"): (ADMIN_ONLY, lambda o: ("/metrics", None)),
    ("POST", "/v1/models/import"): (ADMIN_ONLY, lambda o: ("/v1/models/import", {"source": "x"})),
    ("DELETE", "/v1/models/{name}"): (ADMIN_ONLY, lambda o: (f"/v1/models/{MODEL}", None)),
    ("POST", "/v1/models/{name}/unload"): (
        ADMIN_ONLY, lambda o: (f"/v1/models/{MODEL}/unload", None)),
    ("POST", "/v1/admin/keys"): (ADMIN_ONLY, lambda o: ("/v1/admin/keys", {"owner": "bob",
                                                                          "role": "admin"})),
    ("GET", "/v1/admin/keys"): (ADMIN_ONLY, lambda o: ("/v1/admin/keys", None)),
    ("DELETE", "/v1/admin/keys/{key_id}"): (ADMIN_ONLY, lambda o: ("/v1/admin/keys/abc", None)),
    ("GET", "/v1/admin/audit"): (ADMIN_ONLY, lambda o: ("/v1/admin/audit", None)),
    ("GET", "/v1/admin/audit/verify"): (ADMIN_ONLY, lambda o: ("/v1/admin/audit/verify", None)),
}  # fmt: skip


def route_table(url: str) -> set[tuple[str, str]]:
    """Every (method, path) the server serves, from its OpenAPI document."""
    document = httpx.get(f"{url}/openapi.json").json()
    return {
        (method.upper(), path.replace("{path:path}", "{path}"))
        for path, operations in document["paths"].items()
        for method in operations
    }


def test_every_route_is_classified(objects):
    served = route_table(objects.url)
    assert served - ROUTES.keys() == set(), "classify the new routes in ROUTES"
    assert ROUTES.keys() - served == set(), "ROUTES names routes the server no longer has"


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES))
def test_bob_never_gets_alices_objects(objects, method, path):
    kind, attempt = ROUTES[(method, path)]
    target, body = attempt(objects)
    content = SECRET.encode() if (method, path) == ("PUT", "/v1/fs/files/{path}") else None
    reply = httpx.request(
        method, f"{objects.url}{target}", json=body, content=content, headers=objects.bob,
        timeout=120,
    )  # fmt: skip
    assert SECRET not in reply.text, f"{method} {target} showed alice's object to bob"
    if kind == OBJECT:
        assert reply.status_code in (403, 404), (reply.status_code, reply.text)
    elif kind == ADMIN_ONLY:
        assert reply.status_code == 403, (reply.status_code, reply.text)
    else:
        assert reply.status_code < 500, (reply.status_code, reply.text)
        assert '"owner":"alice"' not in reply.text.replace(" ", "")
        assert PRIVATE not in reply.text, f"{method} {target} named alice's private model"


def test_alices_objects_are_untouched_and_the_admin_sees_them(objects):
    o = objects
    process = httpx.get(f"{o.url}/v1/processes/{o.process}", headers=o.alice).json()
    assert process["state"] == "suspended"  # bob's kill did not land
    assert httpx.get(f"{o.url}/v1/agents/{o.agent}", headers=o.alice).status_code == 200
    assert httpx.get(f"{o.url}/v1/fs/files/{o.file}", headers=o.alice).text == SECRET
    content = httpx.get(f"{o.url}/v1/files/{o.batch_file}/content", headers=o.alice)
    assert SECRET in content.text
    assert httpx.get(f"{o.url}/v1/batches/{o.batch}", headers=o.alice).status_code == 200
    task = httpx.get(f"{o.url}/v1/tasks/{o.task}", headers=o.alice).json()
    assert task["state"] == "suspended"  # bob's cancel and delete did not land
    core = httpx.get(f"{o.url}/v1/agent-memory/core", headers=o.alice).json()["core"]
    assert core["persona"] == SECRET
    listed = httpx.get(f"{o.url}/v1/processes", headers=ADMIN).json()["data"]
    assert o.process in [p["pid"] for p in listed]
    refused = httpx.get(f"{o.url}/v1/admin/audit?limit=1000", headers=ADMIN).json()["data"]
    assert any(e["event"] == "key.login" and e["actor"].startswith("alice ") for e in refused)
    assert any(e["event"] == "access.refused" and str(o.process) in e["target"]
               for e in refused)  # fmt: skip


def test_alices_private_model_is_hers_alone(objects):
    o = objects

    def ids(headers: dict[str, str], path: str = "/v1/models") -> set[str]:
        rows = httpx.get(f"{o.url}{path}", headers=headers).json()["data"]
        return {row.get("id") or row.get("name") for row in rows}

    assert MODEL in ids(o.bob) and PRIVATE not in ids(o.bob) | ids(o.bob, "/v1/models/loaded")
    assert PRIVATE in ids(o.alice) & ids(ADMIN) & ids(o.alice, "/v1/models/loaded")
    assert PRIVATE not in httpx.get(f"{o.url}/health").text  # no key: shared models only
    watched = httpx.get(f"{o.url}/v1/watch?once=true", headers=o.bob, timeout=60)
    assert watched.status_code == 200 and PRIVATE not in watched.text
    assert PRIVATE in httpx.get(f"{o.url}/v1/watch?once=true", headers=o.alice, timeout=60).text
    shown = httpx.get(f"{o.url}/v1/models/{PRIVATE}", headers=o.alice).json()
    assert (shown["owner"], shown["base"]) == ("alice", MODEL)
    assert httpx.get(f"{o.url}/v1/models/{MODEL}", headers=o.bob).status_code == 200  # shared


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/completions", {"model": "{m}", "prompt": "x", "max_tokens": 1}),
        ("POST", "/v1/chat/completions", {"model": "{m}", "messages": [
            {"role": "user", "content": "x"}]}),
        ("POST", "/v1/processes", {"model": "{m}", "prompt": "x", "max_tokens": 1}),
        ("POST", "/v1/embeddings", {"model": "{m}", "input": "x"}),
        ("GET", "/v1/models/{m}", None),
        ("POST", "/v1/models/{m}/load", None),
        ("GET", "/v1/stats?model={m}", None),
        ("GET", "/v1/memory?model={m}", None),
    ],
)  # fmt: skip
def test_bob_gets_for_alices_private_model_what_a_missing_one_gets(objects, method, path, body):
    def ask(model: str) -> tuple[int, str]:
        sent = json.loads(json.dumps(body).replace("{m}", model)) if body else None
        reply = httpx.request(method, objects.url + path.replace("{m}", model), json=sent,
                              headers=objects.bob, timeout=120)  # fmt: skip
        return reply.status_code, reply.text.replace(model, "NAME")

    private, missing = ask(PRIVATE), ask("alice.nope-0000:lora")
    assert private == missing and private[0] in (404, 422), private
