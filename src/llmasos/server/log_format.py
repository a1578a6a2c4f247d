"""How `llmasos serve` logs: text (warnings and errors, as before) or JSON lines (`--log-format
json`): one object per line with time, level, logger, message, the request id of the request
being served (if any) and the line's own fields (an access line: method, path, route, status,
duration_ms, owner, pids)."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from llmasos.errors import InvalidRequestError

REQUEST_ID: ContextVar[str | None] = ContextVar("llmasos_request_id", default=None)
FORMATS = ("text", "json")
_state = {"json": False}


class JsonLines(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(log_format: str) -> None:
    """Route every logger to stderr in `log_format`; JSON mode logs at INFO (access lines
    included), text mode keeps warnings and errors only."""
    if log_format not in FORMATS:
        raise InvalidRequestError("log_format", f"one of {FORMATS}, got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    _state["json"] = log_format == "json"
    root.setLevel(logging.INFO if log_format == "json" else logging.WARNING)


def logs_json() -> bool:
    """Whether configure_logging chose JSON lines (then status lines are log records too)."""
    return _state["json"]
