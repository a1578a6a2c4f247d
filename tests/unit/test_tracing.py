"""Trace spans of tool calls, recorded by the OpenTelemetry SDK in memory."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmasos.tools.builtins import builtin_tools
from llmasos.tools.registry import ToolRegistry

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider():
    """The process's SDK tracer provider (set once per process), with our exporter on it."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(EXPORTER))


def test_a_tool_call_is_a_span_with_its_name_and_outcome():
    EXPORTER.clear()
    registry = ToolRegistry()
    for tool in builtin_tools():
        registry.register(tool)
    assert registry.call("calculator", {"expression": "6 * 7"}).value == 42
    assert not registry.call("calculator", {"expression": 42}).ok
    good, bad = EXPORTER.get_finished_spans()
    assert good.name == bad.name == "llmasos.tool calculator"
    assert good.attributes["llmasos.tool_ok"] is True
    assert bad.attributes["llmasos.tool_ok"] is False
    assert "expression" in bad.attributes["llmasos.tool_error"]
