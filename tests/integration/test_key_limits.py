"""A real `llmasos serve` with stored keys that carry capabilities, and per-key rate limits: a
key's capabilities bound its requests and its agents (refusals are 403 and audited), and a
flooding key gets 429s with Retry-After while another key is still served."""

from __future__ import annotations

import httpx
import pytest

from llmasos.models.default import DEFAULT_MODEL
from tests.integration.conftest import seed_home
from tests.integration.test_server import start_server, stop_server

ADMIN = {"Authorization": "Bearer root"}
PER_MINUTE = 20


def new_key(url: str, owner: str, **capabilities) -> dict[str, str]:
    body = {"owner": owner, "role": "user", "capabilities": capabilities or None}
    reply = httpx.post(f"{url}/v1/admin/keys", json=body, headers=ADMIN)
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['key']}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, session_home, model_path):
    home = seed_home(tmp_path_factory.mktemp("home"), session_home)
    process, url = start_server(
        "--admin-key", "root", "--requests-per-minute", str(PER_MINUTE),
        "--tokens-per-minute", "2000", home=home,
    )  # fmt: skip
    yield url
    stop_server(process)


def test_a_keys_capabilities_bound_its_requests_and_agents(server):
    key = new_key(
        server, "carol", models=[DEFAULT_MODEL], tools=["calculator"], read=["notes"],
        write=["notes"],
    )  # fmt: skip
    other_model = httpx.post(
        f"{server}/v1/completions", json={"model": "llama:7b", "prompt": "Hi"}, headers=key
    )
    assert other_model.status_code == 403
    assert other_model.json()["error"]["code"] == "capability_denied"
    default = httpx.post(f"{server}/v1/completions", json={"prompt": "Hi", "max_tokens": 2},
                         headers=key, timeout=60)  # fmt: skip
    assert default.status_code == 200 and default.json()["model"] == DEFAULT_MODEL
    embedding = httpx.post(f"{server}/v1/embeddings", json={"input": "x"}, headers=key)
    assert embedding.status_code == 403 and "all-minilm" in embedding.text
    assert httpx.put(f"{server}/v1/fs/files/notes/a.txt", content=b"x", headers=key).is_success
    outside = httpx.put(f"{server}/v1/fs/files/diary.txt", content=b"x", headers=key)
    assert outside.status_code == 403 and "capabilities.write" in outside.text
    purge = httpx.delete(f"{server}/v1/fs/files/diary.txt?purge=true", headers=key)
    assert purge.status_code == 403 and "capabilities.write" in purge.text
    for method, path, body in (
        ("GET", "/v1/agent-memory/core", None),
        ("PUT", "/v1/agent-memory/core/persona", {"text": "x"}),
        ("POST", "/v1/agent-memory/archival?agent=helper", {"text": "x"}),
    ):  # memory counts as the namespace's .memory folder: not under notes
        reply = httpx.request(method, f"{server}{path}", json=body, headers=key)
        assert reply.status_code == 403 and ".memory" in reply.text, (path, reply.text)
    agent = {"task": "t", "instructions": "i", "max_steps": 1, "max_tokens_per_step": 1}
    python = httpx.post(f"{server}/v1/agents", json={**agent, "tools": ["python"]}, headers=key)
    assert python.status_code == 403 and "capabilities.tools" in python.text
    wider = {**agent, "capabilities": {"write": ["~carol/"]}}
    assert httpx.post(f"{server}/v1/agents", json=wider, headers=key).status_code == 403
    narrower = {**agent, "capabilities": {"write": ["~carol/notes/agent"]}}
    assert httpx.post(f"{server}/v1/agents", json=narrower, headers=key).status_code == 201
    listed = httpx.get(f"{server}/v1/admin/keys", headers=ADMIN).json()["data"]
    assert [k["capabilities"]["tools"] for k in listed if k["owner"] == "carol"] == [["calculator"]]
    audit = httpx.get(f"{server}/v1/admin/audit", headers=ADMIN).json()["data"]
    refused = [e["detail"] for e in audit if e["event"] == "capability.refused"]
    for field in ("models", "write", "tools"):
        assert any(f"capabilities.{field}" in detail for detail in refused), field


def test_a_flooding_key_gets_429_while_another_key_is_served(server):
    flood, calm = new_key(server, "flood"), new_key(server, "calm")
    replies = [httpx.get(f"{server}/v1/models", headers=flood) for _ in range(PER_MINUTE + 20)]
    refused = [r for r in replies if r.status_code == 429]
    assert len(refused) >= 10
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert refused[0].json()["error"]["code"] == "rate_limited"
    served = httpx.post(f"{server}/v1/completions", json={"prompt": "Hi", "max_tokens": 2},
                        headers=calm, timeout=60)  # fmt: skip
    assert served.status_code == 200  # served, not refused


def test_a_request_over_the_token_rate_is_a_400_naming_max_tokens(server):
    key = new_key(server, "dave")
    reply = httpx.post(f"{server}/v1/completions", json={"prompt": "Hi", "max_tokens": 2001},
                       headers=key)  # fmt: skip
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "max_tokens"


def test_forks_are_charged_to_the_token_rate(server):
    key = new_key(server, "erin")
    spawned = httpx.post(f"{server}/v1/processes", json={"prompt": "Hi", "max_tokens": 100},
                         headers=key, timeout=60)  # fmt: skip
    pid = spawned.json()["pid"]
    httpx.post(f"{server}/v1/processes/{pid}/signal", json={"signal": "suspend"}, headers=key)
    forked = httpx.post(f"{server}/v1/processes/{pid}/fork", json={"n": 32}, headers=key)
    assert forked.status_code == 400 and forked.json()["error"]["param"] == "max_tokens"
    httpx.post(f"{server}/v1/processes/{pid}/signal", json={"signal": "kill"}, headers=key)
