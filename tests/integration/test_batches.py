"""OpenAI batches through the official client on a real server with the default model: every
line answered exactly once, greedy answers equal to single requests, a batch killed with its
server resumes after the restart without losing or repeating a line, bad files are refused
naming the line, and a cancelled batch stops."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import openai
import pytest

from llmasos.jobs.batch_lines import ACTIVE
from llmasos.jobs.batch_store import BatchStore
from llmasos.models.default import DEFAULT_MODEL
from llmasos.settings import Settings
from llmasos.storage.service import Storage
from tests.integration.conftest import seed_home
from tests.integration.test_server import start_server, stop_server

PREFIX = "A list of facts about the sea, numbered. Fact "


def request(custom_id: str, prompt: str, max_tokens: int = 8) -> dict:
    body = {"model": DEFAULT_MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/completions", "body": body}


def upload(client: openai.OpenAI, tmp_path: Path, lines: list) -> str:
    path = tmp_path / f"batch-{time.monotonic_ns()}.jsonl"
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    with path.open("rb") as handle:
        return client.files.create(file=handle, purpose="batch").id


def submit(client: openai.OpenAI, tmp_path: Path, lines: list):
    """A completions batch of `lines`, uploaded and created."""
    file_id = upload(client, tmp_path, lines)
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
    )


def client_at(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def finished(client: openai.OpenAI, batch_id: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    batch = client.batches.retrieve(batch_id)
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.5)
        batch = client.batches.retrieve(batch_id)
    return batch


def answers(client: openai.OpenAI, file_id: str) -> dict[str, dict]:
    rows = [json.loads(line) for line in client.files.content(file_id).text.splitlines()]
    ids = [row["custom_id"] for row in rows]
    assert len(ids) == len(set(ids)), "a line was answered twice"
    return {row["custom_id"]: row["response"] for row in rows}


@pytest.fixture
def home(tmp_path_factory, session_home, model_path):
    return seed_home(tmp_path_factory.mktemp("home"), session_home)


@pytest.fixture
def served(home):
    server, url = start_server(home=home)
    yield client_at(url)
    stop_server(server)


def test_every_line_is_answered_once_as_a_single_request_would_be(served, tmp_path):
    lines = [request(f"fact-{n}", f"{PREFIX}{n}:") for n in range(1, 9)]
    file_id = upload(served, tmp_path, lines)
    batch = served.batches.create(
        input_file_id=file_id, endpoint="/v1/completions", completion_window="24h",
        metadata={"run": "test"},
    )  # fmt: skip
    assert batch.status == "validating" and batch.request_counts.total == 8
    batch = finished(served, batch.id)
    assert batch.status == "completed" and batch.error_file_id is None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (8, 0)
    got = answers(served, batch.output_file_id)
    assert sorted(got) == sorted(line["custom_id"] for line in lines)
    for line in lines[:3]:
        single = served.completions.create(**line["body"])
        assert got[line["custom_id"]]["body"]["choices"][0]["text"] == single.choices[0].text
    assert batch.id in [b.id for b in served.batches.list()]
    assert served.batches.retrieve(batch.id).metadata == {"run": "test"}


def test_bad_files_are_refused_naming_the_line(served, tmp_path):
    def refused(lines: list, fragment: str, endpoint: str = "/v1/completions") -> None:
        file_id = upload(served, tmp_path, lines)
        with pytest.raises(openai.BadRequestError, match=fragment):
            served.batches.create(input_file_id=file_id, endpoint=endpoint, completion_window="24h")

    good = request("a", "Hello")
    refused([good, good], "line 2: custom_id 'a' is also on line 1")
    refused([good, "{not json"], "line 2: not a JSON object")
    refused([good, {**request("b", "x"), "url": "/v1/embeddings"}], "line 2: url must be")
    refused([good], "line 1: url must be the batch's endpoint", "/v1/chat/completions")
    refused([good, json.dumps(request("c", "x")).replace('"temperature": 0', '"temperature": NaN')],
            "line 2: not a JSON object")  # fmt: skip
    refused([good, "[" * 100_000], "line 2: not a JSON object")  # nesting past the parser
    with pytest.raises(openai.NotFoundError):
        served.batches.create(
            input_file_id="file-" + "0" * 24, endpoint="/v1/completions", completion_window="24h"
        )


def test_a_line_the_server_refuses_goes_to_the_error_file(served, tmp_path):
    lines = [request("ok", "Hello"), request("too-long", "Hello", max_tokens=10**6)]
    batch = submit(served, tmp_path, lines)
    batch = finished(served, batch.id)
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    failed = answers(served, batch.error_file_id)["too-long"]
    assert failed["status_code"] == 413 and "max_tokens" in failed["body"]["error"]["message"]
    assert list(answers(served, batch.output_file_id)) == ["ok"]


def test_a_cancelled_batch_stops_starting_lines_and_keeps_its_input(served, tmp_path):
    lines = [request(f"long-{n}", f"{PREFIX}{n}:", max_tokens=200) for n in range(40)]
    input_file = upload(served, tmp_path, lines)
    batch = served.batches.create(
        input_file_id=input_file, endpoint="/v1/completions", completion_window="24h"
    )
    with pytest.raises(openai.ConflictError, match="still reads this file"):
        served.files.delete(input_file)
    assert served.batches.cancel(batch.id).status == "cancelling"
    batch = finished(served, batch.id)
    assert batch.status == "cancelled" and batch.request_counts.completed < 40
    answered = answers(served, batch.output_file_id) if batch.output_file_id else {}
    assert len(answered) == batch.request_counts.completed
    assert served.batches.cancel(batch.id).status == "cancelled"  # ended: nothing changes
    assert served.files.delete(input_file).deleted


def test_a_batch_interrupted_by_a_restart_resumes_without_losing_or_repeating_a_line(
    home, tmp_path
):
    lines = [request(f"fact-{n}", f"{PREFIX}{n}:", max_tokens=24) for n in range(1, 25)]
    server, url = start_server(home=home)
    client = client_at(url)
    batch = submit(client, tmp_path, lines)
    deadline = time.monotonic() + 120
    while client.batches.retrieve(batch.id).request_counts.completed < 4:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    server.send_signal(signal.SIGKILL)  # no shutdown at all
    server.wait()
    server, url = start_server(home=home)
    try:
        client = client_at(url)
        batch = finished(client, batch.id)
        assert batch.status == "completed" and batch.request_counts.completed == 24
        got = answers(client, batch.output_file_id)
        assert sorted(got) == sorted(line["custom_id"] for line in lines)
        single = client.completions.create(**lines[-1]["body"])
        assert got[lines[-1]["custom_id"]]["body"]["choices"][0]["text"] == single.choices[0].text
    finally:
        stop_server(server)


def test_a_batch_whose_window_ran_out_ends_expired_with_what_it_answered(home, tmp_path):
    lines = [request(f"long-{n}", f"{PREFIX}{n}:", max_tokens=200) for n in range(40)]
    server, url = start_server(home=home)
    client = client_at(url)
    batch = submit(client, tmp_path, lines)
    server.send_signal(signal.SIGKILL)
    server.wait()
    storage = Storage.from_settings(Settings(home=home))
    try:  # the window ran out while the server was down
        store = BatchStore(storage)
        assert store.transition(batch.id, ACTIVE, expires_at=int(time.time()) - 1) is not None
    finally:
        storage.close()
    server, url = start_server(home=home)
    try:
        client = client_at(url)
        batch = finished(client, batch.id)
        assert batch.status == "expired" and batch.expired_at is not None
        assert batch.request_counts.completed < 40 and batch.errors.data[0].code == "expired"
    finally:
        stop_server(server)
