"""JSON Lines input that a client sends (batch requests, training records), read strictly: UTF-8,
one standard JSON object a line (no NaN or Infinity, nesting bounded by the parser), blank lines
skipped, at most a given number of lines. Errors name the request field and the line."""

from __future__ import annotations

import json
from typing import Any

from llmasos.errors import InvalidRequestError


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def read_objects(data: bytes, field: str, max_lines: int, what: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line of `data`; InvalidRequestError on `field`
    naming the first bad line. `what` names a line's content in messages ("requests")."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError(field, "the file is not UTF-8 text") from None
    # "\n" only: U+2028 and friends may stand inside a JSON string, unescaped
    lines = [(n, raw) for n, raw in enumerate(text.split("\n"), 1) if raw.strip()]
    if not lines:
        raise InvalidRequestError(field, f"the file holds no {what}")
    if len(lines) > max_lines:
        raise InvalidRequestError(field, f"{len(lines)} {what}; at most {max_lines}")
    return [(number, _parse(number, raw, field)) for number, raw in lines]


def _parse(number: int, raw: str, field: str) -> dict[str, Any]:
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        message = "not a JSON object (standard JSON: no NaN, no Infinity)"
        raise InvalidRequestError(field, f"line {number}: {message}") from None
    if not isinstance(value, dict):
        raise InvalidRequestError(field, f"line {number}: not a JSON object")
    return value
