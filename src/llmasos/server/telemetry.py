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
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from llmasos.server.guards import ASGIApp, Message, Receive, Scope, Send
from llmasos.server.log_format import REQUEST_ID
from llmasos.server.metrics import ServerMetrics
from llmasos.server.tracing import TRACER, trace_processes

SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
access_log = logging.getLogger("llmasos.access")


def request_id_of(scope: Scope) -> str:
    """The client's X-Request-ID if it is a safe token of at most 64 characters, else new."""
    given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
    return given if SAFE_ID.fullmatch(given) else uuid.uuid4().hex[:16]


def method_of(scope: Scope) -> str:
    """The request's method, or "other" for one no route answers (bounded labels)."""
    return scope["method"] if scope["method"] in METHODS else "other"


def route_of(scope: Scope) -> str:
    """The matched route's template (/v1/processes/{pid}), never the raw path: bounded labels."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


@contextmanager
def request_span(scope: Scope, status: Callable[[], int]) -> Iterator[Span]:
    """The request's server span: the framework's own where it traces requests (FastAPI does,
    named by the route template, with the status; it may end before the app returns), else one
    of ours, named and labelled the same way when the request ends."""
    current = trace.get_current_span()
    if current.is_recording():
        yield current
        return
    with TRACER.start_as_current_span(f"{method_of(scope)} request", kind=SpanKind.SERVER) as span:
        try:
            yield span
        finally:
            route = route_of(scope)
            span.update_name(f"{method_of(scope)} {route}")
            span.set_attributes(
                {
                    "http.request.method": method_of(scope),
                    "http.route": route,
                    "http.response.status_code": status(),
                }
            )


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

        with request_span(scope, lambda: status) as span:
            span.set_attribute("llmasos.request_id", request_id)
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                try:
                    self._record(scope, state, status, time.perf_counter() - started)
                    if span.get_span_context().is_valid:  # tracing is on (the span may have ended)
                        trace_processes(scope["app"].state.models, state.get("pids") or ())
                finally:
                    REQUEST_ID.reset(token)

    def _record(self, scope: Scope, state: dict, status: int, seconds: float) -> None:
        route = route_of(scope)
        self.metrics.observe(method_of(scope), route, status, seconds)
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
