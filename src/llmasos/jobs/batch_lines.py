"""A batch's input and output files, in OpenAI's JSONL shapes.

Input, one request a line:
    {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions", "body": {...}}
Output, one line per request that was answered, in input order:
    {"id": "batch_req_...", "custom_id": "...", "response": {"status_code": 200,
     "request_id": "...", "body": {...}}, "error": null}
Requests answered with an error status go to the error file in the same shape.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from llmasos.errors import InvalidRequestError
from llmasos.jobs.jsonl import read_objects

MAX_LINES = 50_000  # OpenAI's limit per batch
MAX_CUSTOM_ID_CHARS = 512


class BatchStatus(enum.StrEnum):
    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # its completion window ran out before every line was answered


ACTIVE = (
    BatchStatus.VALIDATING,
    BatchStatus.IN_PROGRESS,
    BatchStatus.FINALIZING,
    BatchStatus.CANCELLING,
)


@dataclass(frozen=True)
class BatchLine:
    line: int  # 1-based, as an editor numbers them
    custom_id: str
    body: dict[str, Any]


def parse_lines(data: bytes, endpoint: str) -> list[BatchLine]:
    """The requests of an input file; InvalidRequestError naming the line and the field of the
    first bad one (the whole batch is refused: nothing runs half-checked)."""
    lines = read_objects(data, "input_file_id", MAX_LINES, "requests")
    parsed = [_parse_line(n, request, endpoint) for n, request in lines]
    seen: dict[str, int] = {}
    for item in parsed:
        if item.custom_id in seen:
            raise InvalidRequestError(
                "input_file_id",
                f"line {item.line}: custom_id {item.custom_id!r} is also on line "
                f"{seen[item.custom_id]}; each must be unique",
            )
        seen[item.custom_id] = item.line
    return parsed


def _parse_line(number: int, request: dict[str, Any], endpoint: str) -> BatchLine:
    def bad(reason: str) -> InvalidRequestError:
        return InvalidRequestError("input_file_id", f"line {number}: {reason}")

    unknown = set(request) - {"custom_id", "method", "url", "body"}
    if unknown:
        raise bad(f"unknown fields {sorted(unknown)}")
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID_CHARS:
        raise bad(f"custom_id must be a string of 1 to {MAX_CUSTOM_ID_CHARS} characters")
    if request.get("method") != "POST":
        raise bad("method must be POST")
    if request.get("url") != endpoint:
        raise bad(f"url must be the batch's endpoint {endpoint}, got {request.get('url')!r}")
    body = request.get("body")
    if not isinstance(body, dict):
        raise bad("body must be a JSON object")
    if body.get("stream"):
        raise bad("body.stream: a batch request cannot stream")
    return BatchLine(number, custom_id, body)


def output_line(batch_id: str, line: int, custom_id: str, status: int, body: str) -> str:
    """The output (or error) file's line for one answered request, with its newline."""
    try:
        response = json.loads(body)
    except ValueError:
        response = {"error": {"message": body}}
    request_id = response.get("id") if isinstance(response, dict) else None
    return (
        json.dumps(
            {
                "id": f"batch_req_{batch_id.split('-', 1)[-1]}_{line}",
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": request_id, "body": response},
                "error": None,
            },
            ensure_ascii=False,
        )
        + "\n"
    )
