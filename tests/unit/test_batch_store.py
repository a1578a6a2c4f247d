"""Batch files, lines and results without a model: parsing names the bad line, answers are
kept once and sealed, output files are made from them in input order, status changes are
conditional, and an input file is kept while a batch reads it."""

from __future__ import annotations

import json

import pytest

from llmasos.errors import InvalidRequestError, ObjectInUseError, UnknownObjectError
from llmasos.jobs.batch_lines import BatchStatus, parse_lines
from llmasos.jobs.batch_store import BatchStore
from llmasos.storage.service import Storage, StorageConfig

ENDPOINT = "/v1/completions"


def line(custom_id: str, **body) -> str:
    request = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(request, ensure_ascii=False)


@pytest.fixture
def store(tmp_path):
    storage = Storage(StorageConfig(tmp_path, master_key=b"k" * 32))
    yield BatchStore(storage)
    storage.close()


def test_lines_are_numbered_as_an_editor_numbers_them():
    separated = "y\u2028z"  # raw in the file: a line separator inside a JSON string
    data = "\n".join([line("a", prompt="x"), "", line("b", prompt=separated), ""]).encode()
    parsed = parse_lines(data, ENDPOINT)
    assert [(p.line, p.custom_id) for p in parsed] == [(1, "a"), (3, "b")]
    assert parsed[1].body["prompt"] == separated


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {"t": NaN}}',
         "line 1: not a JSON object"),
        ("[" * 50_000, "line 1: not a JSON object"),
        (line("a", prompt="x", stream=True), "line 1: body.stream"),
        (json.dumps({"custom_id": "a", "method": "GET", "url": ENDPOINT, "body": {}}),
         "line 1: method must be POST"),
        (json.dumps({"custom_id": "", "method": "POST", "url": ENDPOINT, "body": {}}),
         "line 1: custom_id"),
        (f"{line('a')}\n{line('a')}", "line 2: custom_id 'a' is also on line 1"),
        ("", "holds no requests"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_naming_the_line(text, fragment):
    with pytest.raises(InvalidRequestError, match=fragment):
        parse_lines(text.encode(), ENDPOINT)


def new_batch(store: BatchStore, owner: str, lines: list[str]) -> tuple[str, list]:
    record = store.add_file(owner, "in.jsonl", "batch", "\n".join(lines).encode())
    batch = {
        "id": "batch-" + "1" * 24, "status": BatchStatus.IN_PROGRESS,
        "input_file_id": record.id, "created_at": 1, "request_counts": {"total": 3},
    }  # fmt: skip
    store.add_batch(owner, None, batch)
    return batch["id"], store.requests(owner, record.id, ENDPOINT)


def test_answers_are_kept_once_sealed_and_made_into_files_in_input_order(store):
    batch_id, requests = new_batch(store, "alice", [line(c, prompt=c) for c in "abc"])
    store.add_result("alice", batch_id, 3, "c", 200, json.dumps({"id": "r3", "text": "SEA"}))
    store.add_result("alice", batch_id, 1, "a", 200, json.dumps({"id": "r1", "text": "SEA"}))
    store.add_result("alice", batch_id, 1, "a", 200, json.dumps({"id": "again"}))  # kept once
    store.add_result("alice", batch_id, 2, "b", 413, json.dumps({"error": {"message": "long"}}))
    assert store.answered(batch_id) == {1, 2, 3} and store.counts(batch_id) == (3, 1)
    with store._db.transaction(write=False) as tx:
        raw = tx.execute("SELECT body FROM batch_results")
    assert not any(b"SEA" in bytes(row[0]) for row in raw)  # sealed at rest
    files = store.add_output_files("alice", batch_id)
    output = b"".join(store.content("alice", files["output_file_id"])).decode().splitlines()
    assert [json.loads(o)["custom_id"] for o in output] == ["a", "c"]
    assert json.loads(output[0])["response"]["body"]["id"] == "r1"
    errors = b"".join(store.content("alice", files["error_file_id"])).decode().splitlines()
    assert json.loads(errors[0])["response"]["status_code"] == 413
    again = store.add_output_files("alice", batch_id)  # a finish repeated after a crash
    assert len([f for f in store.files("alice") if f.batch_id]) == 2
    assert store.file("alice", again["output_file_id"]).bytes == sum(map(len, output)) + 2
    assert len(requests) == 3


def test_status_changes_are_conditional_and_owners_are_apart(store):
    batch_id, _ = new_batch(store, "alice", [line("a", prompt="x")])
    cancelling = store.transition(batch_id, (BatchStatus.IN_PROGRESS,), status="cancelling")
    assert cancelling is not None and cancelling[0] == "in_progress"
    assert store.transition(batch_id, (BatchStatus.IN_PROGRESS,), status="completed") is None
    assert store.batch("alice", batch_id)["status"] == "cancelling"
    with pytest.raises(UnknownObjectError):
        store.batch("bob", batch_id)
    with pytest.raises(UnknownObjectError):
        store.file("bob", store.files("alice")[0].id)
    assert store.active() == [(batch_id, "alice")]


def test_an_input_file_is_kept_while_a_batch_reads_it(store):
    batch_id, _ = new_batch(store, "alice", [line("a", prompt="x")])
    input_file = store.files("alice")[0].id
    with pytest.raises(ObjectInUseError, match=batch_id):
        store.delete_file("alice", input_file)
    store.transition(batch_id, (BatchStatus.IN_PROGRESS,), status="completed")
    store.delete_file("alice", input_file)
    assert store.files("alice") == []
