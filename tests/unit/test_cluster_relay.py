"""A stream cut by a dying replica goes on from a re-run on another: the client gets each piece
of text once, under one id, and a re-run that does not follow ends the stream."""

from __future__ import annotations

import json

import pytest

from llmasos.cluster.relay import Diverged, Relay


def chunk(answer: str, index: int, text: str, finish: str | None = None) -> str:
    choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
    return "data: " + json.dumps({"id": answer, "object": "text_completion.chunk",
                                  "choices": [choice]})  # fmt: skip


def chat_chunk(answer: str, content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return "data: " + json.dumps({"id": answer, "choices": [choice]})


def texts(lines: list[str | None]) -> list[tuple[str, str, str | None]]:
    """(id, text, finish) of each passed chunk."""
    out = []
    for line in lines:
        if line and line.startswith("data: {"):
            body = json.loads(line[6:])
            for c in body["choices"]:
                out.append((body["id"], c.get("text", (c.get("delta") or {}).get("content")),
                            c["finish_reason"]))  # fmt: skip
    return out


def test_a_re_run_is_trimmed_to_what_the_client_lacks_and_keeps_the_first_id():
    relay = Relay()
    first = [relay.line(chunk("cmpl-1000000005", 0, piece)) for piece in ("The", " cat", " s")]
    relay.restart()  # the replica went after " s"
    second = [chunk("cmpl-2000000009", 0, p) for p in ("The", " cat", " sat", " down")]
    second.append(chunk("cmpl-2000000009", 0, "", "length"))
    passed = [relay.line(line) for line in [*second, "", "data: [DONE]"]]
    assert texts(first + passed) == [
        ("cmpl-1000000005", "The", None),
        ("cmpl-1000000005", " cat", None),
        ("cmpl-1000000005", " s", None),
        ("cmpl-1000000005", "at", None),  # " sat" straddled the cut
        ("cmpl-1000000005", " down", None),
        ("cmpl-1000000005", "", "length"),
    ]
    assert passed[:2] == [None, None] and passed[-1] == "data: [DONE]"


def test_choices_catch_up_apart_and_a_finished_one_is_not_finished_twice():
    relay = Relay()
    relay.line(chunk("a", 0, "one", "stop"))
    relay.line(chunk("a", 1, "tw"))
    relay.restart()
    passed = [relay.line(chunk("b", i, t, f)) for i, t, f in
              ((0, "one", "stop"), (1, "two", None), (1, "", "stop"))]  # fmt: skip
    assert texts(passed) == [("a", "o", None), ("a", "", "stop")]


def test_a_chat_stream_is_relayed_by_its_delta_content():
    relay = Relay()
    relay.line(chat_chunk("chat-1", None))  # the opening chunk with the role
    relay.line(chat_chunk("chat-1", "Hel"))
    relay.restart()
    passed = [relay.line(chat_chunk("chat-2", c)) for c in (None, "Hello", " you")]
    assert texts(passed) == [("chat-1", "lo", None), ("chat-1", " you", None)]


def test_a_re_run_that_does_not_follow_is_refused():
    relay = Relay()
    relay.line(chunk("a", 0, "The cat"))
    relay.restart()
    relay.line(chunk("b", 0, "The "))
    with pytest.raises(Diverged):
        relay.line(chunk("b", 0, "dog"))
