"""`llmasos serve` with the real model, driven by the official openai package, raw HTTP and
the CLI's entry point."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from llmasos import Client, ContextLengthError, UnknownModelError
from tests.unit.test_kernel import wait_until

LLMASOS = shutil.which("llmasos", path=str(Path(sys.executable).parent)) or "llmasos"
PROMPT = "The capital of France is"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    *args: str, home: Path | None = None, log: Path | None = None
) -> tuple[subprocess.Popen, str]:
    """`llmasos serve` with `args`; its output goes to `log` (a file, for a long run whose
    output would fill a pipe nobody reads) or to a pipe read when it fails to start."""
    port = free_port()
    command = [
        LLMASOS,
        "serve",
        "--port",
        str(port),
        "--num-slots",
        "16",
        "--max-running",
        "16",
        "--context-length",
        "512",
        *args,
    ]
    env = {**os.environ, "LLMASOS_API_KEYS": ""}
    if home is not None:
        env["LLMASOS_HOME"] = str(home)
    output = log.open("wb") if log is not None else subprocess.PIPE
    server = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(log.read_text() if log else server.stdout.read().decode())
        try:
            if httpx.get(f"{url}/health", timeout=1).is_success:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("server did not start")


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture(scope="module")
def oai(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def test_openai_completions_whole_and_streamed_agree(oai):
    whole = oai.completions.create(model="gemma3-270m", prompt=PROMPT, max_tokens=16, temperature=0)
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 16
    stream = oai.completions.create(
        model="gemma3-270m", prompt=PROMPT, max_tokens=16, temperature=0, stream=True
    )
    assert "".join(chunk.choices[0].text for chunk in stream) == whole.choices[0].text


def test_openai_chat_whole_and_streamed_agree(oai):
    messages = [{"role": "user", "content": "Name a colour."}]
    whole = oai.chat.completions.create(
        model="gemma3-270m:q4_k_m", messages=messages, max_tokens=12, temperature=0
    )
    reply = whole.choices[0].message
    assert reply.role == "assistant" and reply.content
    stream = oai.chat.completions.create(
        model="gemma3-270m:q4_k_m",
        messages=messages,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert "gemma3-270m:q4_k_m" in [m.id for m in oai.models.list().data]


def test_sixteen_concurrent_streams_complete_with_correct_usage(url, oai):
    prompts = [f"Fact number {i} about the ocean is that" for i in range(16)]

    def stream(prompt: str) -> tuple[str, dict]:
        chunks = list(
            oai.completions.create(
                model="gemma3-270m",
                prompt=prompt,
                max_tokens=24,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].text for c in chunks if c.choices)
        return text, chunks[-1].usage

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        streamed = list(pool.map(stream, prompts))
    tokenizer_counts = [
        oai.completions.create(model="gemma3-270m", prompt=p, max_tokens=1).usage.prompt_tokens
        for p in prompts
    ]
    for (text, usage), prompt_tokens in zip(streamed, tokenizer_counts, strict=True):
        assert text
        assert usage.completion_tokens == 24
        assert usage.prompt_tokens == prompt_tokens
        assert usage.total_tokens == prompt_tokens + 24
    stats = httpx.get(f"{url}/v1/stats").json()
    assert stats["num_used_slots"] == 0


def test_a_client_that_disconnects_mid_stream_gets_its_process_killed_and_pages_freed(url):
    body = {"prompt": "A very long story begins:", "max_tokens": 400, "stream": True}
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=30) as response:
        lines = response.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        pid = int(json.loads(first[6:])["id"].split("-")[1])
        next(line for line in lines if line.startswith("data: "))

    def ended() -> bool:
        return httpx.get(f"{url}/v1/processes/{pid}").json()["state"] == "terminated"

    wait_until(ended, timeout=60)
    process = httpx.get(f"{url}/v1/processes/{pid}").json()
    assert process["finish_reason"] == "killed"
    assert process["output_tokens"] < 400
    memory = httpx.get(f"{url}/v1/memory").json()  # read as soon as it ended: nothing waits
    assert memory["used_pages"] == 0
    assert httpx.get(f"{url}/v1/stats").json()["num_used_slots"] == 0


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b'{"prompt": "x", "max_tokens": ', 400, None),
        (b'{"prompt": "x", "max_tokens": "lots"}', 400, "max_tokens"),
        (b'{"prompt": "x", "temperature": 9000}', 400, "temperature"),
        (b'{"prompt": "x", "model": "gpt-5"}', 404, "model"),
        (json.dumps({"prompt": "word " * 600}).encode(), 413, "max_tokens"),
    ],
)
def test_bad_requests_get_clear_errors_and_the_server_stays_up(url, body, status, param):
    response = httpx.post(
        f"{url}/v1/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.json()["error"]["param"] == param
    assert httpx.get(f"{url}/health").is_success


def test_unknown_pid_is_404(url):
    response = httpx.post(f"{url}/v1/processes/123456/signal", json={"signal": "kill"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "process_not_found"


def test_api_key_is_required_when_configured():
    server, url = start_server("--api-key", "letmein")
    try:
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert (
            httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()
        good = openai.OpenAI(base_url=f"{url}/v1", api_key="letmein", max_retries=0)
        assert good.completions.create(model="gemma3-270m", prompt="Hi", max_tokens=2).choices
    finally:
        stop_server(server)


def test_sdk_over_http_offers_the_same_methods(url):
    with Client(base_url=url) as client:
        local_text = client.generate_text(PROMPT, max_tokens=10, temperature=0)
        assert (
            "".join(client.generate_text(PROMPT, max_tokens=10, temperature=0, stream=True))
            == local_text
        )
        handle = client.spawn("An endless list of numbers: 1, 2, 3,", max_tokens=300, temperature=0)
        wait_until(lambda: handle.state.value == "running", timeout=60)
        handle.kill()
        assert handle.wait().finish_reason.value == "killed"
        assert handle.pid in [row.pid for row in client.ps()]
        assert client.status().model == "gemma3-270m:q4_k_m"
        memory = client.memory()
        assert memory.prefix_hits + memory.prefix_misses >= 2
        assert memory.total_pages == memory.used_pages + memory.cached_pages + memory.free_pages
        assert client.chat([{"role": "user", "content": "Hello"}], max_tokens=5)
        with pytest.raises(UnknownModelError):
            client.spawn("x", model="nope")
        with pytest.raises(ContextLengthError):
            client.spawn("word " * 600)


def cli(*args: str, url: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LLMASOS, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LLMASOS_URL": url},
    )


def test_cli_commands_against_the_server(url):
    run = cli("run", PROMPT, "-n", "8", "--temperature", "0", url=url)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(PROMPT) and len(run.stdout) > len(PROMPT) + 1
    with Client(base_url=url) as client:
        handle = client.spawn("Count slowly: one, two,", max_tokens=300, temperature=0)
        wait_until(lambda: handle.state.value == "running", timeout=60)
        listed = cli("ps", url=url)
        assert listed.returncode == 0 and str(handle.pid) in listed.stdout
        shown = cli("top", "--iterations", "1", url=url)
        assert shown.returncode == 0 and "tok/s" in shown.stdout and "KV pages" in shown.stdout
        killed = cli("kill", str(handle.pid), url=url)
        assert killed.returncode == 0 and f"killed pid {handle.pid}" in killed.stdout
        assert handle.wait().finish_reason.value == "killed"
    missing = cli("kill", "424242", url=url)
    assert missing.returncode == 2 and "no such process" in missing.stderr
    chat = cli("chat", "-n", "6", "--temperature", "0", url=url, stdin="Hello\n/exit\n")
    assert chat.returncode == 0 and chat.stdout.startswith("> ")
    for command in ("serve", "run", "chat", "ps", "kill", "top"):
        assert cli(command, "--help", url=url).returncode == 0


def test_cli_without_a_server_runs_in_process_or_says_what_to_do():
    nowhere = f"http://127.0.0.1:{free_port()}"
    run = cli("run", PROMPT, "-n", "4", "--temperature", "0", url=nowhere)
    assert run.returncode == 0
    assert run.stderr == f"no server at {nowhere}; running in-process\n"  # a line of its own
    assert run.stdout.startswith(PROMPT) and run.stdout.endswith("\n")
    assert run.stdout.count("\n") == 1 and "running in-process" not in run.stdout
    listed = cli("ps", url=nowhere)
    assert listed.returncode == 2 and "llmasos serve" in listed.stderr
