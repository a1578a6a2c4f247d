"""Request bodies of the agent routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from llmasos.agents.agent import AgentLimits
from llmasos.agents.react import MAX_INSTRUCTIONS, AgentSpec
from llmasos.auth.capabilities import MAX_ENTRIES, Capabilities
from llmasos.server.schemas import ModelName, StrictBody, bounded
from llmasos.storage.paths import MAX_PATH_CHARS, PREFIX_REGEX

MAX_TASK_CHARS = 64 * 1024
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class LimitsBody(StrictBody):
    max_steps: bounded(1, 10**6) | None = None
    token_budget: bounded(1, 10**9) | None = None
    wall_time_s: float | None = Field(None, gt=0, le=86400)


CapabilityName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Prefix = Annotated[str, StringConstraints(max_length=MAX_PATH_CHARS, pattern=PREFIX_REGEX)]


def entries(kind: Any) -> Any:
    """A list of at most MAX_ENTRIES of `kind`."""
    return Annotated[list[kind], Field(max_length=MAX_ENTRIES)]


class CapabilitiesBody(StrictBody):
    """What the agent may touch (see llmasos.auth.capabilities); within the key's own."""

    models: entries(ModelName) | None = None
    tools: entries(CapabilityName) | None = None
    read: entries(Prefix) | None = None
    write: entries(Prefix) | None = None
    channels: entries(CapabilityName) | None = None
    max_pages: bounded(1, 10**9) | None = None
    token_budget: bounded(1, 10**9) | None = None

    def capabilities(self) -> Capabilities:
        return Capabilities.from_json(self.model_dump())


class AgentRequest(StrictBody):
    """POST /v1/agents: a declarative agent (instructions, tools, output schema, limits) and its
    task, run by the built-in tool-using loop; see the README's "Agents"."""

    task: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TASK_CHARS)]
    instructions: Annotated[str, StringConstraints(min_length=1, max_length=MAX_INSTRUCTIONS)]
    tools: Annotated[list[ToolName], Field(max_length=64, default_factory=list)]
    output_schema: dict[str, Any] | None = None
    model: ModelName | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "agent"
    priority: bounded(-1000, 1000) = 0
    max_steps: bounded(1, 100) = 8
    max_tokens_per_step: bounded(1, 4096) = 256
    temperature: float = Field(0.0, ge=0, le=100)
    seed: bounded(0, 2**32 - 2) | None = None
    limits: LimitsBody | None = None
    capabilities: CapabilitiesBody | None = None

    def spec(self) -> AgentSpec:
        limits = AgentLimits(**self.limits.model_dump()) if self.limits else AgentLimits()
        return AgentSpec(
            instructions=self.instructions,
            tools=tuple(self.tools),
            output_schema=self.output_schema,
            model=self.model,
            name=self.name,
            priority=self.priority,
            max_steps=self.max_steps,
            max_tokens_per_step=self.max_tokens_per_step,
            temperature=self.temperature,
            seed=self.seed,
            limits=limits,
        )
