"""The tool registry: named tools with JSON-schema parameters.

A call is checked before it runs: an unknown name raises UnknownToolError (a program error);
arguments that do not validate against the tool's parameters, a tool that raises, and a
sandboxed tool that fails or hits a limit all come back as an error ToolResult, which an agent
reads like any result and can act on.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema
from opentelemetry import trace

from llmasos.errors import InvalidRequestError, LLMasOSError, UnknownToolError
from llmasos.toolcalls import FunctionTool, check_tools

MAX_RESULT_CHARS = 64 * 1024
TRACER = trace.get_tracer("llmasos")


class ToolFailure(LLMasOSError):
    """Raised by a tool's function to hand the agent an error result with this message."""


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gave: its value, or the error that stopped it."""

    tool: str
    ok: bool
    value: Any = None  # JSON-serialisable, when ok
    error: str | None = None  # when not ok
    duration_s: float = 0.0

    def text(self) -> str:
        """The result as an agent's transcript shows it."""
        if not self.ok:
            return f"error: {self.error}"
        return self.value if isinstance(self.value, str) else json.dumps(self.value)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # the JSON Schema of the arguments object
    function: Callable[..., Any]  # called with the arguments as keywords

    def spec(self) -> FunctionTool:
        return FunctionTool(self.name, self.description, self.parameters)


class ToolRegistry:
    """Tools by name. Safe to read from several threads once registered."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.register(tool)

    def register(self, tool: Tool) -> Tool:
        (checked,) = check_tools([tool.spec().as_openai()])
        try:
            jsonschema.validators.validator_for(tool.parameters).check_schema(tool.parameters)
        except jsonschema.SchemaError as error:
            raise InvalidRequestError("parameters", f"not a JSON Schema: {error.message}") from None
        if checked.name in self._tools:
            raise InvalidRequestError("name", f"a tool named {checked.name!r} is registered")
        self._tools[tool.name] = tool
        return tool

    def register_function(
        self,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Tool:
        """Register a Python function (it runs in this process: it is your own code). Without
        `parameters`, its keyword parameters become required string-or-number arguments."""
        tool = Tool(
            name or function.__name__,
            description or inspect.getdoc(function) or "",
            parameters if parameters is not None else _parameters_of(function),
            function,
        )
        return self.register(tool)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(name, self.names()) from None

    def specs(self, names: list[str] | None = None) -> list[FunctionTool]:
        """The tools (all, or those named) as the tool-call format describes them."""
        return [self.get(n).spec() for n in (names if names is not None else self.names())]

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Check `arguments` against the tool's parameters and run it (in a trace span)."""
        with TRACER.start_as_current_span(f"llmasos.tool {name}") as span:
            result = self._call(name, arguments)
            span.set_attributes({"llmasos.tool": name, "llmasos.tool_ok": result.ok})
            if result.error:
                span.set_attribute("llmasos.tool_error", result.error[:200])
            return result

    def _call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        tool = self.get(name)
        started = time.monotonic()
        problem = argument_problem(tool, arguments)
        if problem is not None:
            return ToolResult(name, False, error=problem)
        try:
            value = tool.function(**arguments)
            json.dumps(value)
        except ToolFailure as failure:
            return ToolResult(name, False, error=str(failure), duration_s=_since(started))
        except Exception as error:  # the tool's own failure is the agent's result
            message = f"{type(error).__name__}: {error}"
            return ToolResult(name, False, error=message, duration_s=_since(started))
        if isinstance(value, str) and len(value) > MAX_RESULT_CHARS:
            message = f"the result has {len(value)} characters; at most {MAX_RESULT_CHARS}"
            return ToolResult(name, False, error=message, duration_s=_since(started))
        return ToolResult(name, True, value=value, duration_s=_since(started))


def argument_problem(tool: Tool, arguments: object) -> str | None:
    """Why `arguments` do not fit `tool`'s parameters (naming the argument), or None."""
    if not isinstance(arguments, dict):
        return f"arguments: must be an object, got {type(arguments).__name__}"
    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError as error:
        where = ".".join(str(part) for part in error.absolute_path) or "arguments"
        return f"{where}: {error.message}"
    return None


def _parameters_of(function: Callable[..., Any]) -> dict[str, Any]:
    names = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    properties = {n: {"type": ["string", "number", "boolean"]} for n in names}
    return {"type": "object", "properties": properties, "required": names}


def _since(started: float) -> float:
    return time.monotonic() - started
