"""HTTP routes on the fake engine: formats, streaming, signals and every error class."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from llmasos.chat import FALLBACK_STOP
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.kernel import Kernel
from llmasos.runtime.manager import ModelManager
from llmasos.server.app import create_app
from llmasos.server.guards import MAX_BODY_BYTES, Access, key_owner
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_kernel import signal_through_gate, solo_text, wait_until


def fake_models(kernel: Kernel) -> ModelManager:
    """A model manager serving one fake kernel as "fake" (it has no repository to load from)."""

    def cannot_load(*_args):
        raise AssertionError("the fake manager loads nothing")

    models = ModelManager(
        None,
        kernel_config=kernel.config,
        load_engine=cannot_load,
        kv_bytes_for=cannot_load,
        devices=[],
        default_model="fake:latest",
    )
    models.add("fake", kernel)
    return models


def make_client(*, api_keys=(), slots=4, raise_errors=True, **config) -> TestClient:
    kernel = Kernel(FakeEngine(num_slots=slots), KernelConfig(max_running=slots, **config))
    app = create_app(fake_models(kernel), access=Access(api_keys=tuple(api_keys)))
    return TestClient(app, raise_server_exceptions=raise_errors)


def kernel_of(http: TestClient) -> Kernel:
    return http.app.state.models.peek()


@pytest.fixture
def http():
    with make_client() as client:
        yield client


def sse_events(response) -> list:
    lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_models_lists_the_loaded_model(http):
    body = http.get("/v1/models").json()
    assert [m["id"] for m in body["data"]] == ["fake:latest"]


def test_completion_returns_text_and_usage(http):
    body = http.post("/v1/completions", json={"prompt": "abc", "max_tokens": 5, "temperature": 0})
    assert body.status_code == 200
    data = body.json()
    assert data["object"] == "text_completion"
    assert data["choices"][0]["text"] == solo_text("abc", 5)
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 5,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_completion_with_several_prompts_answers_each_in_order(http):
    prompts = ["one", "two", "three"]
    data = http.post("/v1/completions", json={"prompt": prompts, "max_tokens": 3, "temperature": 0})
    texts = [c["text"] for c in sorted(data.json()["choices"], key=lambda c: c["index"])]
    assert texts == [solo_text(p, 3) for p in prompts]


def test_streamed_completion_adds_up_and_reports_usage(http):
    request = {
        "prompt": "stream me",
        "max_tokens": 6,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with http.stream("POST", "/v1/completions", json=request) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = sse_events(response)
    text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert text == solo_text("stream me", 6)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 6


def test_chat_uses_the_fallback_transcript(http):
    messages = [{"role": "user", "content": "Hi"}]
    data = http.post(
        "/v1/chat/completions", json={"messages": messages, "max_tokens": 4, "temperature": 0}
    ).json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": solo_text("User: Hi\n\nAssistant:", 4),
    }


def test_streamed_chat_starts_with_the_role_and_ends_with_a_finish_reason(http):
    request = {
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        "temperature": 0,
        "stream": True,
    }
    with http.stream("POST", "/v1/chat/completions", json=request) as response:
        chunks = sse_events(response)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == solo_text("User: Hi\n\nAssistant:", 4)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_native_spawn_signal_and_events(http):
    engine = kernel_of(http).engine
    engine.close_gate()
    created = http.post(
        "/v1/processes", json={"prompt": "native", "max_tokens": 150, "temperature": 0}
    )
    assert created.status_code == 201
    pid = created.json()["pid"]
    replies = []
    signal_through_gate(
        engine,
        lambda: replies.append(
            http.post(f"/v1/processes/{pid}/signal", json={"signal": "suspend"}).json()
        ),
    )
    assert replies[0]["state"] == "suspended"
    engine.open_gate()
    http.post(f"/v1/processes/{pid}/signal", json={"signal": "resume"})
    with http.stream("GET", f"/v1/processes/{pid}/events") as response:
        events = sse_events(response)
    text = "".join(e["text"] for e in events if e["type"] == "text")
    assert events[-1]["type"] == "result"
    assert text == events[-1]["result"]["text"] == solo_text("native", 150)
    detail = http.get(f"/v1/processes/{pid}").json()
    assert detail["state"] == "terminated"
    assert detail["result"]["usage"]["completion_tokens"] == 150
    assert pid in [p["pid"] for p in http.get("/v1/processes").json()["data"]]


def test_metrics_and_stats_count_the_work_done(http):
    http.post("/v1/completions", json={"prompt": "count", "max_tokens": 3, "temperature": 0})
    text = http.get("/metrics").text
    assert 'llmasos_generated_tokens_total{model="fake:latest"} 3' in text
    assert 'llmasos_processes{model="fake:latest",state="terminated"} 1' in text
    assert 'llmasos_time_to_first_token_seconds_count{model="fake:latest"} 1' in text
    assert 'llmasos_queue_length{model="fake:latest"} 0' in text
    assert 'llmasos_kv_slots{model="fake:latest",status="cached"} 1' in text
    stats = http.get("/v1/stats").json()
    assert stats["generated_tokens"] == 3
    assert stats["processes"] == {"terminated": 1}


@pytest.mark.parametrize(
    ("path", "body", "status", "param", "fragment"),
    [
        ("/v1/completions", {"prompt": "x", "max_tokens": "5"}, 400, "max_tokens", "integer"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", ">= 1"),
        ("/v1/completions", {"prompt": "x", "temperature": -1}, 400, "temperature", ">= 0"),
        ("/v1/completions", {"prompt": "x", "top_p": 2}, 400, "top_p", "<= 1"),
        ("/v1/completions", {"prompt": "x", "logprobs": 21}, 400, "logprobs", "<= 20"),
        ("/v1/completions", {"prompt": "x", "n": 17}, 400, "n", "<= 16"),
        ("/v1/completions", {"prompt": "x", "best_of": 2}, 400, "best_of", "<= 1"),
        ("/v1/completions", {"prompt": "x", "tools": []}, 400, "tools", "unsupported field"),
        ("/v1/completions", {"max_tokens": 3}, 400, "prompt", "required"),
        ("/v1/completions", {"prompt": ""}, 400, "prompt", "at least 1 characters"),
        ("/v1/completions", {"prompt": []}, 400, "prompt", "at least 1 items"),
        ("/v1/completions", {"prompt": "x", "model": "gpt-4"}, 404, "model", "unknown model"),
        ("/v1/completions", {"prompt": "x" * 300}, 413, "max_tokens", "context length"),
        ("/v1/chat/completions", {"messages": []}, 400, "messages", "at least 1 items"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "bot", "content": "x"}]},
            400,
            "messages[0].role",
            "must be one of",
        ),
        ("/v1/processes/999/signal", {"signal": "kill"}, 404, "pid", "no such process"),
        ("/v1/processes/1/signal", {"signal": "stop"}, 400, "signal", "kill"),
    ],
)
def test_bad_requests_get_openai_style_errors(http, path, body, status, param, fragment):
    response = http.post(path, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    assert fragment in error["message"]
    assert http.get("/health").json()["status"] == "ok"


def test_malformed_json_and_oversized_bodies_are_refused(http):
    response = http.post(
        "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]
    big = http.post(
        "/v1/completions",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413
    assert http.get("/no/such/route").status_code == 404


def test_signal_to_an_ended_process_is_a_conflict(http):
    pid = http.post("/v1/processes", json={"prompt": "x", "max_tokens": 1}).json()["pid"]
    wait_until(lambda: http.get(f"/v1/processes/{pid}").json()["state"] == "terminated")
    response = http.post(f"/v1/processes/{pid}/signal", json={"signal": "kill"})
    assert response.status_code == 409
    assert "already terminated" in response.json()["error"]["message"]


OPEN_ROUTES = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def test_api_keys_guard_every_route_but_health_and_the_api_docs():
    with make_client(api_keys=["sekrit"]) as http:
        checked = 0
        for template, operations in http.app.openapi()["paths"].items():
            if template in OPEN_ROUTES:
                continue
            path = template.replace("{pid}", "1").replace("{name}", "fake")
            for method in operations:
                for headers in ({}, {"Authorization": "Bearer wrong"}):
                    response = http.request(method.upper(), path, headers=headers)
                    assert response.status_code == 401, (method, template, headers)
                    assert response.json()["error"]["type"] == "authentication_error"
                checked += 1
        assert checked >= 17  # every route the server documents
        assert http.get("/health").status_code == 200
        ok = http.post(
            "/v1/processes",
            json={"prompt": "x", "max_tokens": 1},
            headers={"Authorization": "Bearer sekrit"},
        )
        assert ok.status_code == 201
        assert ok.json()["owner"] == key_owner("sekrit")


def test_too_many_live_processes_get_429():
    with make_client(slots=1, max_live_processes=1) as http:
        kernel_of(http).engine.close_gate()
        first = http.post("/v1/processes", json={"prompt": "x", "max_tokens": 5})
        assert first.status_code == 201
        busy = http.post("/v1/processes", json={"prompt": "y", "max_tokens": 5})
        assert busy.status_code == 429
        assert busy.json()["error"]["type"] == "rate_limit_error"
        kernel_of(http).engine.open_gate()


def test_a_closed_kernel_answers_503():
    with make_client() as http:
        kernel_of(http).close()
        response = http.post("/v1/completions", json={"prompt": "x"})
        assert response.status_code == 503


def test_chat_fallback_stop_is_added_to_the_callers_stop_strings(http):
    data = http.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "Q"}], "max_tokens": 2, "stop": "zz"},
    ).json()
    pid = int(data["id"].split("-")[1])
    process = kernel_of(http).get(pid)
    assert process.params.stop == ("zz", FALLBACK_STOP)
    assert data["choices"][0]["finish_reason"] == "length"


def test_memory_report_and_page_quota_over_http():
    with make_client(max_pages_per_process=2, page_size=16) as http:
        http.post("/v1/completions", json={"prompt": "remember me", "max_tokens": 4})
        report = http.get("/v1/memory").json()
        assert report["page_size"] == 16
        assert report["cached_pages"] == 1  # the finished process's 15 tokens, kept as cache
        assert report["prefix_misses"] == 1
        assert report["processes"] == []
        too_big = http.post("/v1/completions", json={"prompt": "x", "max_tokens": 40})
        assert too_big.status_code == 429
        assert too_big.json()["error"]["code"] == "quota_exceeded"
        metrics = http.get("/metrics").text
        assert 'llmasos_kv_pages{model="fake:latest",status="cached"} 1' in metrics
        assert 'llmasos_prefix_cache_lookups_total{model="fake:latest",result="miss"} 1' in metrics


def test_an_unexpected_failure_is_a_500_naming_its_request_id_in_body_header_and_log(
    monkeypatch, caplog
):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("llmasos.server.native_api.info_to_json", broken)
    with make_client(raise_errors=False) as http:
        spawned = http.post("/v1/processes", json={"prompt": "x", "max_tokens": 1})
    assert spawned.status_code == 500
    request_id = spawned.headers["x-request-id"]
    assert request_id in spawned.json()["error"]["message"]
    assert "a bug" not in spawned.text  # the details stay in the log
    (failure,) = [r for r in caplog.records if r.getMessage().startswith("request ")]
    assert failure.request_id == request_id
