"""Tool calls: OpenAI's `tools` and `tool_choice`, and the one format LLMasOS uses for calls with
every model.

A call is written as

    <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>

and several calls follow each other, one per line. The prompt describes the tools (the model's
own chat template does, when it takes `tools`; otherwise tools_prompt() below), and a grammar
(tool_grammar) makes every call well formed: a known name, arguments that validate against that
function's parameters. tool_choice "required" or a named function allows only calls; "auto"
allows calls or text that does not start with "<"; "none" leaves the output unconstrained.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

from llmasos.constraint import with_json_layout
from llmasos.errors import InvalidRequestError, UnprocessableError

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
MAX_TOOLS = 64
MAX_PARALLEL_CALLS = 4  # a base model repeats calls until stopped: the grammar allows this many
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)" + re.escape(CALL_CLOSE), re.DOTALL)


@dataclass(frozen=True)
class FunctionTool:
    name: str
    description: str
    parameters: dict[str, Any]  # a JSON Schema for the arguments object

    def as_openai(self) -> dict[str, Any]:
        function = {"name": self.name, "description": self.description}
        return {"type": "function", "function": {**function, "parameters": self.parameters}}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # a JSON object, as text (OpenAI's form)

    def text(self) -> str:
        """The call as the model writes it."""
        body = {"name": self.name, "arguments": json.loads(self.arguments or "{}")}
        return f"{CALL_OPEN}{json.dumps(body)}{CALL_CLOSE}"


class ToolMode(enum.Enum):
    NONE = "none"
    AUTO = "auto"
    REQUIRED = "required"
    NAMED = "named"


@dataclass(frozen=True)
class ToolChoice:
    mode: ToolMode
    name: str | None = None  # the function a NAMED choice forces


def check_tools(tools: object) -> list[FunctionTool]:
    """OpenAI's `tools`: a list of {"type": "function", "function": {name, description,
    parameters}} ([] for None); InvalidRequestError naming the element at fault."""
    if tools is None:
        return []
    if not isinstance(tools, list) or not 1 <= len(tools) <= MAX_TOOLS:
        raise InvalidRequestError("tools", f"must be a list of 1 to {MAX_TOOLS} tools")
    checked: list[FunctionTool] = []
    for i, tool in enumerate(tools):
        field = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequestError(f"{field}.type", 'must be "function"')
        function = tool.get("function")
        if not isinstance(function, dict):
            raise InvalidRequestError(f"{field}.function", "must be an object")
        name = function.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidRequestError(
                f"{field}.function.name", "must be 1-64 of a-z, A-Z, 0-9, _ -"
            )
        if name in {t.name for t in checked}:
            raise UnprocessableError(f"{field}.function.name", f"{name!r} is given twice")
        description = function.get("description", "")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(description, str):
            raise InvalidRequestError(f"{field}.function.description", "must be a string")
        if not isinstance(parameters, dict):
            raise InvalidRequestError(f"{field}.function.parameters", "must be a JSON Schema")
        checked.append(FunctionTool(name, description, parameters))
    return checked


def check_tool_choice(choice: object, tools: list[FunctionTool]) -> ToolChoice:
    """OpenAI's `tool_choice` (default "auto" with tools)."""
    if choice is None:
        return ToolChoice(ToolMode.AUTO)
    if isinstance(choice, str) and choice in ("none", "auto", "required"):
        return ToolChoice(ToolMode(choice))
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name in {t.name for t in tools}:
            return ToolChoice(ToolMode.NAMED, name)
        raise UnprocessableError("tool_choice", f"names no tool in `tools`: {name!r}")
    raise InvalidRequestError(
        "tool_choice", 'must be "none", "auto", "required" or {"type": "function", ...}'
    )


def tools_prompt(tools: list[FunctionTool]) -> str:
    """How the tools are described to a model without a chat template of its own."""
    lines = [
        "You can call these tools. To call one, answer with",
        f'{CALL_OPEN}{{"name": <tool name>, "arguments": <arguments object>}}{CALL_CLOSE}',
        "Tools:",
    ]
    for tool in tools:
        lines.append(f"- {tool.name}: {tool.description}".rstrip(": "))
        lines.append(f"  arguments (JSON Schema): {json.dumps(tool.parameters)}")
    return "\n".join(lines)


def tool_grammar(
    tools: list[FunctionTool], choice: ToolChoice, *, parallel: bool, text_schema: dict | None
) -> str | None:
    """The Lark grammar the output must follow, or None (no constraint) for tool_choice none.
    `text_schema`, when given, is the JSON Schema that text answers must follow instead."""
    if choice.mode is ToolMode.NONE:
        return None
    allowed = [t for t in tools if choice.mode is not ToolMode.NAMED or t.name == choice.name]
    call_schema = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in allowed
        ]
    }
    more = f'("\\n" call)~0..{MAX_PARALLEL_CALLS - 1}' if parallel else ""
    rules = [
        f"calls: call {more}".rstrip(),
        f'call: "{CALL_OPEN}" arguments "{CALL_CLOSE}"',
        f"arguments: %json {json.dumps(with_json_layout(call_schema))}",
    ]
    if choice.mode is ToolMode.AUTO:
        text = "TEXT" if text_schema is None else "answer"
        rules.insert(0, f"start: calls | {text}")
        rules.append(
            r"TEXT: /[^<](.|\n)*/"
            if text_schema is None
            else f"answer: %json {json.dumps(with_json_layout(text_schema))}"
        )
    else:
        rules.insert(0, "start: calls")
    return "\n".join(rules) + "\n"


def parse_calls(text: str, id_prefix: str) -> list[ToolCall] | None:
    """The calls in a reply written in the tool-call format, or None for a text reply."""
    if not text.lstrip().startswith(CALL_OPEN):
        return None
    calls = []
    for i, body in enumerate(_CALL.findall(text)):
        try:
            call = json.loads(body)
            name, arguments = call["name"], call["arguments"]
        except (ValueError, KeyError, TypeError):
            continue  # cut short by max_tokens: not a call
        calls.append(ToolCall(f"{id_prefix}-{i}", name, json.dumps(arguments)))
    return calls
