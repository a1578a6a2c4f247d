"""Declarative agents over HTTP and the CLI, on a real server with the default model."""

from __future__ import annotations

import json

import httpx
import jsonschema

from tests.integration.test_server import cli
from tests.unit.test_kernel import wait_until

SPEC = {
    "instructions": "You do arithmetic with the calculator.",
    "tools": ["calculator"],
    "max_steps": 3,
    "max_tokens_per_step": 64,
    "temperature": 0.5,
}
CALCULATOR = {
    "type": "object",
    "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 1000}},
    "required": ["expression"],
    "additionalProperties": False,
}


def events(url: str, pid: int) -> list[dict]:
    with httpx.stream("GET", f"{url}/v1/agents/{pid}/events", timeout=300) as reply:
        assert reply.status_code == 200
        lines = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


def test_an_agent_runs_over_http_streams_its_steps_and_keeps_its_trace(url):
    reply = httpx.post(f"{url}/v1/agents", json={**SPEC, "task": "What is 6 * 7?"}, timeout=60)
    assert reply.status_code == 201, reply.text
    pid = reply.json()["pid"]
    streamed = events(url, pid)
    *steps, last = streamed
    assert last["result"]["outcome"] == "done" and isinstance(last["result"]["value"], str)
    trace = httpx.get(f"{url}/v1/agents/{pid}/trace").json()["data"]
    assert [s["step"] for s in steps] == trace
    assert 1 <= sum(e["syscall"] == "llm" for e in trace) <= 3
    for entry in trace:
        if entry["syscall"] == "tool":
            jsonschema.validate(entry["inputs"]["arguments"], CALCULATOR)
        if entry["syscall"] == "llm":
            assert entry["tokens"]["completion"] >= 1 and entry["logprobs"]
    body = httpx.get(f"{url}/v1/agents/{pid}").json()
    assert body["state"] == "terminated" and body["result"]["value"] == last["result"]["value"]
    assert any(a["pid"] == pid for a in httpx.get(f"{url}/v1/agents?all=true").json()["data"])
    deleted = httpx.delete(f"{url}/v1/agents/{pid}")
    assert deleted.status_code == 200 and deleted.json()["result"]["outcome"] == "done"
    assert httpx.get(f"{url}/v1/agents/{pid}").status_code == 404


def test_deleting_an_agent_kills_it_and_its_model_call(url):
    spec = {**SPEC, "max_tokens_per_step": 400, "temperature": 1.0, "tools": []}
    spec["output_schema"] = {"type": "string", "maxLength": 2000}
    pid = httpx.post(f"{url}/v1/agents", json={**spec, "task": "Write a long essay."}).json()["pid"]
    wait_until(lambda: httpx.get(f"{url}/v1/agents/{pid}").json()["processes"], 60)
    killed = httpx.delete(f"{url}/v1/agents/{pid}", timeout=30)
    assert killed.status_code == 200 and killed.json()["outcome"] == "killed"
    calls = [e["pid"] for e in killed.json()["result"]["trace"] if e["syscall"] == "llm"]
    processes = {p["pid"]: p for p in httpx.get(f"{url}/v1/processes").json()["data"]}
    assert len(calls) == 1 and processes[calls[0]]["state"] == "terminated"
    assert httpx.get(f"{url}/v1/agents/{pid}").status_code == 404


def test_bad_specs_are_refused_naming_the_field(url):
    unknown = httpx.post(f"{url}/v1/agents", json={**SPEC, "tools": ["shell"], "task": "x"})
    steps = httpx.post(f"{url}/v1/agents", json={**SPEC, "max_steps": 0, "task": "x"})
    extra = httpx.post(f"{url}/v1/agents", json={**SPEC, "task": "x", "memory": 1})
    assert (
        unknown.status_code == 422 and "unknown tool 'shell'" in unknown.json()["error"]["message"]
    )
    assert steps.status_code == 400 and steps.json()["error"]["param"] == "max_steps"
    assert extra.status_code == 400 and "memory" in extra.json()["error"]["message"]
    assert httpx.get(f"{url}/v1/agents/999999").status_code == 404


def test_the_cli_runs_a_spec_file_and_shows_ps_and_the_trace(url, tmp_path):
    spec = tmp_path / "adder.yaml"
    spec.write_text(
        "instructions: You do arithmetic with the calculator.\n"
        "tools: [calculator]\nmax_steps: 3\nmax_tokens_per_step: 64\n"
    )
    run = cli("agents", "run", str(spec), "--task", "What is 2 + 2?", url=url)
    assert run.returncode == 0, run.stderr
    pid = int(run.stderr.split("agent ")[1].split()[0])
    trace = cli("agents", "trace", str(pid), url=url)
    assert trace.returncode == 0 and " llm " in trace.stdout
    listing = cli("agents", "ps", "--all", url=url)
    assert str(pid) in listing.stdout and "done" in listing.stdout
    everything = cli("ps", "--all", url=url)
    assert everything.returncode == 0 and "CHILDREN" in everything.stdout
    missing = cli("agents", "run", str(tmp_path / "none.yaml"), "--task", "x", url=url)
    assert missing.returncode != 0
    long = tmp_path / "essay.yaml"
    long.write_text("instructions: You write long essays.\nmax_tokens_per_step: 400\n")
    started = cli("agents", "run", str(long), "--task", "The sea.", "--detach", url=url)
    pid = int(started.stdout)
    shown = cli("top", "--iterations", "1", url=url)
    assert shown.returncode == 0 and "CHILDREN" in shown.stdout and str(pid) in shown.stdout
    killed = cli("agents", "kill", str(pid), url=url)
    assert killed.returncode == 0 and "killed" in killed.stdout
