"""A training job's data: JSON Lines of {"text": "..."} or {"messages": [{"role", "content"}]}
records, checked up front so that a bad file is refused with the line and the field named before
any training starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmasos.errors import InvalidRequestError
from llmasos.jobs.jsonl import read_objects

MAX_RECORDS = 100_000
MAX_DATA_BYTES = 64 * 1024 * 1024
MAX_TEXT_CHARS = 64 * 1024  # a record's text, or all of its messages' content together
MAX_MESSAGES = 256
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Record:
    line: int
    text: str | None = None
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content)


def read_records(data: bytes) -> list[Record]:
    """The records of a training file; InvalidRequestError on "data" naming the first bad line
    and field."""
    if len(data) > MAX_DATA_BYTES:
        raise InvalidRequestError("data", f"{len(data)} bytes; at most {MAX_DATA_BYTES}")
    return [_record(n, value) for n, value in read_objects(data, "data", MAX_RECORDS, "records")]


def _record(number: int, value: dict[str, Any]) -> Record:
    def bad(reason: str) -> InvalidRequestError:
        return InvalidRequestError("data", f"line {number}: {reason}")

    kinds = [key for key in ("text", "messages") if key in value]
    if len(kinds) != 1 or set(value) - {"text", "messages"}:
        raise bad('a record is {"text": "..."} or {"messages": [...]}, and nothing else')
    if "text" in value:
        text = value["text"]
        if not isinstance(text, str) or not text.strip():
            raise bad("text must be a non-empty string")
        if len(text) > MAX_TEXT_CHARS:
            raise bad(f"text has {len(text)} characters; at most {MAX_TEXT_CHARS}")
        return Record(number, text=text)
    messages = value["messages"]
    if not isinstance(messages, list) or not 0 < len(messages) <= MAX_MESSAGES:
        raise bad(f"messages must be a list of 1 to {MAX_MESSAGES} messages")
    pairs = tuple(_message(i, m, bad) for i, m in enumerate(messages))
    if sum(len(content) for _, content in pairs) > MAX_TEXT_CHARS:
        raise bad(f"messages hold more than {MAX_TEXT_CHARS} characters")
    if pairs[-1][0] != "assistant":
        raise bad("messages: the last message must be the assistant's (what is learnt)")
    return Record(number, messages=pairs)


def _message(index: int, message: Any, bad: Any) -> tuple[str, str]:
    if not isinstance(message, dict) or set(message) != {"role", "content"}:
        raise bad(f'messages[{index}] must be {{"role": ..., "content": ...}}')
    role, content = message["role"], message["content"]
    if role not in ROLES:
        raise bad(f"messages[{index}].role must be one of {list(ROLES)}, got {role!r}")
    if not isinstance(content, str):
        raise bad(f"messages[{index}].content must be a string")
    return role, content
