"""The agent control block: identity, state, limits, accounting and trace of one agent.

The runtime's thread for the agent changes it; other threads read it (ps, handles)."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from llmasos.auth.capabilities import Capabilities
from llmasos.errors import CapabilityError, InvalidRequestError


class AgentState(enum.Enum):
    RUNNING = "running"  # in its own code
    BLOCKED = "blocked"  # in a syscall: a model call, a tool, a spawn
    WAITING = "waiting"  # for a message or for another agent
    SLEEPING = "sleeping"
    TERMINATED = "terminated"


class AgentOutcome(enum.Enum):
    DONE = "done"  # its function returned
    FAILED = "failed"  # its function raised
    KILLED = "killed"
    LIMIT = "limit"  # stopped at one of its limits


@dataclass(frozen=True)
class AgentLimits:
    """None is no limit. Steps are model calls plus tool calls; tokens are those the engine
    computed for its model calls (prompt tokens not taken from the prefix cache, plus output).
    A call that starts within the limits runs to its end; the next one is refused."""

    max_steps: int | None = None
    token_budget: int | None = None
    wall_time_s: float | None = None

    def __post_init__(self) -> None:
        for name, high in (("max_steps", 10**6), ("token_budget", 10**9), ("wall_time_s", 86400)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not 0 < value <= high):
                raise InvalidRequestError(f"limits.{name}", f"must be above 0 and at most {high}")


def budgeted(limits: AgentLimits, capabilities: Capabilities) -> AgentLimits:
    """`limits` under the capabilities' token budget: taken when the limits name none,
    refused (CapabilityError) when they name more."""
    cap, asked = capabilities.token_budget, limits.token_budget
    if cap is None or (asked is not None and asked <= cap):
        return limits
    if asked is not None:
        raise CapabilityError("token_budget", f"limits ask for {asked} tokens; it holds {cap}")
    return dataclasses.replace(limits, token_budget=cap)


@dataclass
class TokenAccount:
    """The token budget of a capability set, shared by an agent and all its descendants, so
    that children cannot multiply it."""

    limit: int
    used: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def charge(self, tokens: int) -> None:
        with self.lock:
            self.used += tokens


@dataclass
class AgentUsage:
    model_calls: int = 0
    tool_calls: int = 0
    syscalls: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, taken from the prefix cache
    completion_tokens: int = 0
    tool_s: float = 0.0

    @property
    def steps(self) -> int:
        return self.model_calls + self.tool_calls

    @property
    def computed_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens + self.completion_tokens


@dataclass
class TraceEntry:
    """One syscall: what went in, what came out, how long it took."""

    syscall: str  # llm, tool, send, recv, broadcast, spawn, wait, sleep
    started_s: float  # since the agent started
    inputs: dict[str, Any]
    duration_s: float = 0.0
    output: Any = None
    error: str | None = None
    pid: int | None = None  # the process (model call) or agent it concerned
    tokens: dict[str, int] | None = None  # a model call's usage
    logprobs: list[dict[str, Any]] | None = None  # a model call's, when it asked for them


@dataclass(eq=False)
class Agent:
    pid: int
    name: str
    owner: str
    priority: int
    limits: AgentLimits
    parent: int | None = None
    calls: Any = None  # where its model calls run (a handles.ModelCalls)
    capabilities: Capabilities = field(default_factory=Capabilities)
    account: TokenAccount | None = None  # its capabilities' token budget, shared with its tree
    state: AgentState = AgentState.RUNNING
    outcome: AgentOutcome | None = None
    value: Any = None
    error: str | None = None
    started_at: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    usage: AgentUsage = field(default_factory=AgentUsage)
    trace: list[TraceEntry] = field(default_factory=list)
    processes: dict[int, Any] = field(default_factory=dict)  # live model calls: pid -> handle
    child_agents: list[int] = field(default_factory=list)
    limit_hit: str | None = None  # set (with `killed`) when the wall-time limit stops it
    killed: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def alive(self) -> bool:
        return self.state is not AgentState.TERMINATED

    @property
    def wall_s(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started_at


@dataclass(frozen=True)
class AgentResult:
    """What a finished agent leaves: its function's return value (or its error) and trace."""

    pid: int
    outcome: AgentOutcome
    value: Any
    error: str | None
    usage: AgentUsage
    wall_s: float
    trace: list[TraceEntry]

    @property
    def ok(self) -> bool:
        return self.outcome is AgentOutcome.DONE

    @classmethod
    def of(cls, agent: Agent) -> AgentResult:
        assert agent.outcome is not None
        return cls(
            agent.pid,
            agent.outcome,
            agent.value,
            agent.error,
            agent.usage,
            agent.wall_s,
            list(agent.trace),
        )


@dataclass(frozen=True)
class AgentInfo:
    """An agent as ps shows it."""

    pid: int
    name: str
    parent: int | None
    owner: str
    priority: int
    state: AgentState
    outcome: AgentOutcome | None
    processes: list[int]  # its live model calls
    child_agents: list[int]
    steps: int
    computed_tokens: int
    wall_s: float

    @classmethod
    def of(cls, agent: Agent) -> AgentInfo:
        with agent.lock:
            processes, children = sorted(agent.processes), list(agent.child_agents)
        return cls(
            agent.pid,
            agent.name,
            agent.parent,
            agent.owner,
            agent.priority,
            agent.state,
            agent.outcome,
            processes,
            children,
            agent.usage.steps,
            agent.usage.computed_tokens,
            round(agent.wall_s, 3),
        )
