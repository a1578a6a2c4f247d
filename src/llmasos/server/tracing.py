"""OpenTelemetry traces, where the library makes them cheap.

A span per HTTP request (`METHOD /route/template`: its request id, route and status), with a
child span per process the request spawned, made from the process's own clock when the request
ends: spawn to end, an event at its first token, its accounting as attributes (prompt, cached
and output tokens, time in engine steps, preemptions, finish reason). Tool calls have their own
spans (llmasos.tools.registry). The API does nothing until a tracer provider is set:
`llmasos serve` sets one exporting OTLP over HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; the other OTEL_* variables apply as usual.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from opentelemetry import trace

from llmasos.errors import InvalidRequestError, NoSuchProcessError
from llmasos.kernel.process import Process
from llmasos.runtime.manager import ModelManager

TRACER = trace.get_tracer("llmasos")
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def configure_tracing() -> bool:
    """Export spans over OTLP/HTTP if an endpoint is configured; whether it is."""
    if not any(os.environ.get(name) for name in ENDPOINTS):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise InvalidRequestError(
            ENDPOINTS[0], "exporting traces needs the tracing extra: pip install 'llmasos[tracing]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": "llmasos"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def _epoch_ns(monotonic_s: float) -> int:
    """A time.monotonic() reading as nanoseconds since the epoch."""
    return time.time_ns() - int((time.monotonic() - monotonic_s) * 1e9)


def trace_processes(models: ModelManager, pids: Iterable[int]) -> None:
    """A span for each process, as a child of the current span (the request's)."""
    for pid in pids:
        try:
            process = models.kernel_of(pid).get(pid)
        except NoSuchProcessError:
            continue  # ended and forgotten already
        _process_span(process)


def _process_span(process: Process) -> None:
    reason = process.finish_reason.value if process.finish_reason else "running"
    span = TRACER.start_span(
        "llmasos.process",
        start_time=_epoch_ns(process.spawned_at),
        attributes={
            "llmasos.pid": process.pid,
            "llmasos.owner": process.owner,
            "llmasos.model": process.model,
            "llmasos.priority": process.priority,
            "llmasos.prompt_tokens": len(process.prompt_tokens),
            "llmasos.cached_tokens": process.cached_prompt_tokens,
            "llmasos.output_tokens": process.num_output_tokens,
            "llmasos.engine_s": round(process.run_s, 6),
            "llmasos.preemptions": process.preemptions,
            "llmasos.finish_reason": reason,
        },
    )
    if process.first_token_at is not None:
        span.add_event("first_token", timestamp=_epoch_ns(process.first_token_at))
    span.end(end_time=_epoch_ns(process.finished_at or time.monotonic()))
