"""What the server records of each request: its id, an access log line, HTTP metrics and a
trace span (llmasos.server.tracing).

The id is the client's X-Request-ID when it is a short safe token (so a caller can follow its
own ids through the log), else a fresh one. It comes back in the X-Request-ID header, sits in
request.state.request_id (an internal error's message names it) and in a context variable
that every log line written while the request runs carries (llmasos.server.log_format).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from llmasos.server.guards import ASGIApp, Message, Receive, Scope, Send
from llmasos.server.log_format import REQUEST_ID
from llmasos.server.metrics import ServerMetrics
from llmasos.server.tracing import TRACER, trace_processes

SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
access_log = logging.getLogger("llmasos.access")


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID if it is a safe token of at most 64 characters, else new."""
    given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
    return given if SAFE_ID.fullmatch(given) else uuid.uuid4().hex[:16]


def route_of(scope: Scope) -> str:
    """The matched route's template (/v1/processes/{pid}), never the raw path: bounded labels."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


@contextmanager
def request_span(scope: Scope) -> Iterator[Span]:
    """The request's server span: the framework's own where it traces requests (FastAPI does,
    with the route template as its name and the status; it may end before the app returns),
    else one of ours."""
    current = trace.get_current_span()
    if current.is_recording():
        yield current
        return
    name = f"{scope['method']} {scope['path']}"
    with TRACER.start_as_current_span(name, kind=SpanKind.SERVER) as span:
        span.set_attribute("http.request.method", scope["method"])
        yield span
        span.update_name(f"{scope['method']} {route_of(scope)}")
        span.set_attribute("http.route", route_of(scope))


class RequestTelemetry:
    """ASGI middleware: the request id, then, when the response ends, the access log line and
    the HTTP metrics (status 500 if the app failed before answering)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        with request_span(scope) as span:
            span.set_attribute("llmasos.request_id", request_id)
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                self._record(scope, state, status, seconds)
                if span.get_span_context().is_valid:  # tracing is on (the span may have ended)
                    trace_processes(scope["app"].state.models, state.get("pids") or ())
                REQUEST_ID.reset(token)

    def _record(self, scope: Scope, state: dict, status: int, seconds: float) -> None:
        route = route_of(scope)
        self.metrics.observe(scope["method"], route, status, seconds)
        fields = {
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "owner": state.get("owner"),
            "pids": state.get("pids"),
        }
        access_log.info(
            "%s %s %d %.1f ms",
            scope["method"],
            scope["path"],
            status,
            seconds * 1000,
            extra={"fields": {k: v for k, v in fields.items() if v is not None}},
        )
