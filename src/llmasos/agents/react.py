"""Declarative agents: a spec (instructions, tools, output schema, limits) run by the built-in
tool-using loop, in the ReAct style.

Each step the model writes one JSON object, constrained to be either a call of one of the
spec's tools with arguments that validate against its parameters, or the final answer (valid
against the spec's output schema; by default a string short enough to fit a step):

    {instructions}

    Answer step by step. A step is one JSON object: a tool call {"tool": NAME, "arguments":
    {...}} or the final answer {"answer": ...}. The result of a call follows as an Observation.
    Tools:
    - NAME: DESCRIPTION arguments: {JSON Schema}
    Task: {task}
    Step: {"tool": ...}
    Observation: {result}
    Step: {"answer": ...}

The transcript only grows, so each step's prompt starts with the previous step's prompt and
output: the prefix cache holds them, and a step computes only its new tokens. The last step the
spec's max_steps allows may only answer, so the loop ends with an answer, unless that step
too is cut short by max_tokens_per_step (AgentError); an earlier step cut short is answered with
an error Observation, and the loop goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import jsonschema

from llmasos.agents.agent import AgentLimits
from llmasos.agents.context import AgentContext
from llmasos.agents.storage_tools import STORAGE_TOOLS, storage_tool
from llmasos.constraint import with_json_layout
from llmasos.errors import (
    AgentError,
    AgentKilledError,
    AgentLimitError,
    InvalidRequestError,
    LLMasOSError,
    UnknownToolError,
)
from llmasos.toolcalls import FunctionTool
from llmasos.tools.registry import ToolRegistry

MAX_INSTRUCTIONS = 64 * 1024
CHANNEL = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"}
AGENT_TOOLS = {  # tools the loop runs with the agent's own syscalls
    "send": FunctionTool(
        "send",
        "Sends a message to an agent (by pid) or to a channel (by name).",
        {
            "type": "object",
            "properties": {
                "to": {"anyOf": [{"type": "integer", "minimum": 1}, CHANNEL]},
                "body": {"type": "string", "maxLength": 2000},
            },
            "required": ["to", "body"],
            "additionalProperties": False,
        },
    ),
    "spawn": FunctionTool(
        "spawn",
        "Hands a subtask to a helper agent with the same instructions and tools; the result "
        "is its answer.",
        {
            "type": "object",
            "properties": {"task": {"type": "string", "minLength": 1, "maxLength": 500}},
            "required": ["task"],
            "additionalProperties": False,
        },
    ),
    **STORAGE_TOOLS,
}
LOGPROBS = 5  # alternatives recorded per token of every step, for the trace
SEED_LIMIT = 2**32 - 1
CUT = "error: the step was cut at {} tokens; write a shorter one"


@dataclass(frozen=True)
class AgentSpec:
    instructions: str
    tools: tuple[str, ...] = ()
    output_schema: dict[str, Any] | None = None
    model: str | None = None
    name: str = "agent"
    priority: int = 0
    max_steps: int = 8  # model steps; the last may only answer
    max_tokens_per_step: int = 256
    temperature: float = 0.0
    seed: int | None = None  # step n samples with seed + n: the same run gives the same steps
    limits: AgentLimits = field(default_factory=AgentLimits)

    def __post_init__(self) -> None:
        text = self.instructions
        if not isinstance(text, str) or not 0 < len(text) <= MAX_INSTRUCTIONS:
            raise InvalidRequestError(
                "instructions", f"must be a string of 1 to {MAX_INSTRUCTIONS} characters"
            )
        if not 1 <= self.max_steps <= 100:
            raise InvalidRequestError("max_steps", f"must be 1 to 100, got {self.max_steps}")
        if not 1 <= self.max_tokens_per_step <= 4096:
            raise InvalidRequestError("max_tokens_per_step", "must be 1 to 4096")
        if self.output_schema is not None and not isinstance(self.output_schema, dict):
            raise InvalidRequestError("output_schema", "must be a JSON Schema object")

    @classmethod
    def from_dict(cls, data: object) -> AgentSpec:
        """A spec from parsed YAML or JSON; InvalidRequestError naming a bad or unknown field."""
        if not isinstance(data, dict):
            raise InvalidRequestError("spec", "must be a mapping of fields")
        known = set(cls.__dataclass_fields__)
        for key in data:
            if key not in known:
                raise InvalidRequestError(str(key), f"unknown field; known: {sorted(known)}")
        fields = dict(data)
        if "tools" in fields:
            tools = fields["tools"]
            if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
                raise InvalidRequestError("tools", "must be a list of tool names")
            fields["tools"] = tuple(tools)
        if "limits" in fields:
            if not isinstance(fields["limits"], dict):
                raise InvalidRequestError("limits", "must be a mapping")
            fields["limits"] = AgentLimits(**fields["limits"])
        try:
            return cls(**fields)
        except TypeError as error:
            raise InvalidRequestError("spec", str(error)) from None


def default_answer(max_tokens_per_step: int) -> dict[str, Any]:
    """A string short enough to always fit a step (a token spells at least one character)."""
    return {"type": "string", "maxLength": max(1, (max_tokens_per_step - 16) // 2)}


def step_schema(tools: list[FunctionTool], answer: dict[str, Any], *, answer_only: bool) -> dict:
    """What one step may be: a call of one of `tools`, or the answer."""
    options = [] if answer_only else [_call_schema(tool) for tool in tools]
    options.append(_closed({"answer": answer}, ["answer"]))
    return options[0] if len(options) == 1 else {"anyOf": options}


def check_spec_tools(spec: AgentSpec, registry: ToolRegistry) -> None:
    """UnknownToolError for a tool of `spec` that neither `registry` nor the loop has."""
    for name in spec.tools:
        if name not in AGENT_TOOLS and name not in registry.names():
            raise UnknownToolError(name, sorted([*registry.names(), *AGENT_TOOLS]))


def run_spec(ctx: AgentContext, spec: AgentSpec, task: str) -> Any:
    """The built-in loop: an agent function for `run_agent(run_spec, spec, task)`."""
    tools = [AGENT_TOOLS.get(name) or ctx.tool_specs([name])[0] for name in spec.tools]
    transcript = _header(spec, tools) + f"Task: {task}\nStep: "
    answer = spec.output_schema or default_answer(spec.max_tokens_per_step)
    for step_number in range(1, spec.max_steps + 1):
        schema = step_schema(tools, answer, answer_only=step_number == spec.max_steps)
        seed = None if spec.seed is None else (spec.seed + step_number) % SEED_LIMIT
        text = ctx.llm(
            transcript,
            model=spec.model,
            grammar=f"start: %json {json.dumps(with_json_layout(schema))}\n",
            max_tokens=spec.max_tokens_per_step,
            temperature=spec.temperature,
            seed=seed,
            logprobs=LOGPROBS,
        )
        step = _parsed(text)
        if step is not None and "answer" in step:
            return step["answer"]
        if step is None:  # cut by max_tokens_per_step: the model is told, and tries again
            observation = CUT.format(spec.max_tokens_per_step)
        elif step["tool"] in AGENT_TOOLS:
            observation = agent_tool(ctx, spec, step["tool"], step["arguments"])
        else:
            observation = ctx.tool(step["tool"], **step["arguments"]).text()
        transcript += f"{text}\nObservation: {observation}\nStep: "
    raise AgentError(
        f"max_tokens_per_step: the answer was not complete after {spec.max_tokens_per_step} "
        "tokens; raise it, or bound the output schema"
    )


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        return json.loads(text)
    except ValueError:
        return None


def agent_tool(ctx: AgentContext, spec: AgentSpec, name: str, arguments: dict) -> str:
    """Run the loop's own tools through the agent's syscalls: `send` a message, `spawn` a
    helper (this spec without `spawn`, so helpers do not spawn helpers) and wait for its
    answer, or a storage tool (agents.storage_tools). A failure is the observation, as with
    any tool."""
    try:
        jsonschema.validate(arguments, AGENT_TOOLS[name].parameters)
        ctx.check_tool(name)
        if name in STORAGE_TOOLS:
            return storage_tool(ctx, name, arguments)
        if name == "send":
            ctx.send(arguments["to"], arguments["body"])
            return "sent"
        helper = replace(spec, tools=tuple(t for t in spec.tools if t != "spawn"))
        pid = ctx.spawn(
            run_spec, helper, arguments["task"], name=f"{spec.name}-helper", limits=spec.limits
        )
        return json.dumps(ctx.wait(pid))
    except (LLMasOSError, jsonschema.ValidationError) as error:
        if isinstance(error, (AgentKilledError, AgentLimitError)):
            raise
        return f"error: {getattr(error, 'message', error)}"


def _header(spec: AgentSpec, tools: list[FunctionTool]) -> str:
    lines = [
        spec.instructions.strip(),
        "",
        'Answer step by step. A step is one JSON object: a tool call {"tool": NAME, '
        '"arguments": {...}} or the final answer {"answer": ...}. The result of a call '
        "follows as an Observation.",
    ]
    if tools:
        lines.append("Tools:")
        lines += [
            f"- {t.name}: {t.description} arguments: {json.dumps(t.parameters)}" for t in tools
        ]
    return "\n".join(lines) + "\n"


def _call_schema(tool: FunctionTool) -> dict[str, Any]:
    return _closed(
        {"tool": {"const": tool.name}, "arguments": tool.parameters}, ["tool", "arguments"]
    )


def _closed(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
