"""What an operator sees of a real `llmasos serve`: Prometheus metrics through prometheus-client
with the names the README documents, JSON log lines that carry request ids, and OpenTelemetry
spans exported over OTLP/HTTP to a receiver the test runs."""

from __future__ import annotations

import gzip
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_server import start_server, stop_server
from tests.unit.test_kernel import wait_until

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def logged_server(tmp_path_factory, session_home, model_path):
    """A server logging JSON lines to a file: (url, log path)."""
    log = tmp_path_factory.mktemp("observed") / "server.log"
    server, url = start_server("--log-format", "json", home=session_home, log=log)
    yield url, log
    stop_server(server)


def families(url: str) -> dict:
    text = httpx.get(f"{url}/metrics").text
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family, **labels: str) -> list[float]:
    return [s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def documented_metric_names() -> set[str]:
    """The metric names in the README's table (its first column)."""
    return set(re.findall(r"^\| `(llmasos_[a-z_]+)`", README.read_text(), re.M))


def test_metrics_parse_as_prometheus_and_are_exactly_the_documented_ones(logged_server):
    url, _ = logged_server
    body = {"prompt": "The sea is", "max_tokens": 4, "temperature": 0}
    assert httpx.post(f"{url}/v1/completions", json=body, timeout=60).is_success
    exposed = families(url)
    names = {f.name + ("_total" if f.type == "counter" else "") for f in exposed.values()}
    assert names == documented_metric_names()
    model = "gemma3-270m:q4_k_m"
    generated = exposed["llmasos_owner_generated_tokens"]
    assert sum(samples(generated, model=model, owner="anonymous")) >= 4
    waits = exposed["llmasos_queue_wait_seconds"].samples
    (count,) = [s.value for s in waits if s.name.endswith("_count") and s.labels["model"] == model]
    assert count >= 1
    http = samples(
        exposed["llmasos_http_requests"], method="POST", route="/v1/completions", status="200"
    )
    assert http and http[0] >= 1


def test_unmatched_paths_share_one_route_label(logged_server):
    url, _ = logged_server
    for n in range(3):
        assert httpx.get(f"{url}/no/such/path/{n}").status_code == 404
    http = families(url)["llmasos_http_requests"]
    routes = {s.labels["route"] for s in http.samples}
    assert "unmatched" in routes
    assert not any(route.startswith("/no/such") for route in routes)


def access_lines(log: Path) -> list[dict]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [line for line in lines if line["logger"] == "llmasos.access"]


def test_every_log_line_is_json_and_an_access_line_carries_the_request_id_and_pids(logged_server):
    url, log = logged_server
    body = {"prompt": "Tea is", "max_tokens": 3, "temperature": 0}
    reply = httpx.post(
        f"{url}/v1/completions", json=body, headers={"X-Request-ID": "trace-42.a"}, timeout=60
    )
    assert reply.headers["x-request-id"] == "trace-42.a"
    pid = int(reply.json()["id"].split("-")[1])
    unsafe = httpx.get(f"{url}/health", headers={"X-Request-ID": "x" * 65})
    fresh = unsafe.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", fresh)
    wait_until(lambda: any(line.get("request_id") == fresh for line in access_lines(log)))
    lines = access_lines(log)  # every line parsed as JSON
    (mine,) = [line for line in lines if line.get("request_id") == "trace-42.a"]
    assert mine["route"] == "/v1/completions" and mine["status"] == 200
    assert mine["pids"] == [pid] and mine["owner"] == "anonymous"
    assert mine["duration_ms"] > 0
    assert any(line.get("request_id") == fresh and line["path"] == "/health" for line in lines)


SPANS: list = []  # what the receiver was sent


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                SPANS.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def attributes(span) -> dict:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def test_a_request_and_its_process_are_exported_as_parent_and_child_spans(
    tmp_path, session_home, monkeypatch
):
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{receiver.server_port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    server, url = start_server(home=session_home, log=tmp_path / "server.log")
    try:
        body = {"prompt": "Rivers run", "max_tokens": 3, "temperature": 0}
        headers = {"X-Request-ID": "traced-1"}
        reply = httpx.post(f"{url}/v1/completions", json=body, headers=headers, timeout=60)
        pid = int(reply.json()["id"].split("-")[1])

        def exported() -> list:
            return [s for s in SPANS if s.name == "llmasos.process"]

        wait_until(lambda: exported())
    finally:
        stop_server(server)
        receiver.shutdown()
    (request_span,) = [s for s in SPANS if attributes(s).get("llmasos.request_id") == "traced-1"]
    assert request_span.name == "POST /v1/completions"
    assert attributes(request_span)["http.route"] == "/v1/completions"
    assert attributes(request_span)["http.response.status_code"] == 200
    (process,) = exported()
    assert "ended span" not in (tmp_path / "server.log").read_text()  # no attribute set late
    assert process.trace_id == request_span.trace_id
    assert process.parent_span_id == request_span.span_id
    figures = attributes(process)
    assert figures["llmasos.pid"] == pid and figures["llmasos.output_tokens"] == 3
    assert figures["llmasos.finish_reason"] == "length"
    assert [event.name for event in process.events] == ["first_token"]
    assert request_span.start_time_unix_nano <= process.start_time_unix_nano
    assert process.end_time_unix_nano <= request_span.end_time_unix_nano
