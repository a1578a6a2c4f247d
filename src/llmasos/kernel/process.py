"""The process control block: one generation's identity, state, tokens and accounting.

Only the kernel's tick thread mutates a Process. Other threads read it (for ps, handles) and
receive its output through the events it publishes to subscribers.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from llmasos.engine.base import Sampler
from llmasos.kernel.output import OutputText
from llmasos.sampling import SamplingParams

logger = logging.getLogger(__name__)


class ProcessState(enum.Enum):
    NEW = "new"  # spawned, not yet seen by the scheduler
    READY = "ready"  # waiting for its turn; KV (if any) resident in a slot
    RUNNING = "running"  # part of the current engine batch
    SWAPPED = "swapped"  # waiting; KV saved to host memory, no slot
    SUSPENDED = "suspended"  # stopped by a signal until resumed
    WAITING = "waiting"  # a fork waiting for its parent's first token (drawn from its logits)
    TERMINATED = "terminated"  # finished, killed or failed


class Signal(enum.Enum):
    """What a caller can ask of a live process."""

    KILL = "kill"
    SUSPEND = "suspend"
    RESUME = "resume"


class FinishReason(enum.Enum):
    STOP = "stop"  # end-of-generation token or a stop string
    LENGTH = "length"  # max_tokens reached
    KILLED = "killed"  # killed by a signal or a client that went away
    ERROR = "error"  # the engine failed on this process


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens taken from the prefix cache, not computed

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Timings:
    """Seconds, measured on the kernel's monotonic clock."""

    waiting_s: float  # from spawn to end, minus the time spent in engine steps
    time_to_first_token_s: float | None
    run_s: float  # time spent in engine steps that included this process
    total_s: float


@dataclass(frozen=True)
class TokenProb:
    """A token, the bytes it stands for, and its log-probability."""

    token: int
    piece: bytes
    logprob: float


@dataclass(frozen=True)
class StepLogprobs:
    """One generated token's log-probability and the most likely alternatives at that step."""

    chosen: TokenProb
    alternatives: tuple[TokenProb, ...]


@dataclass(frozen=True)
class Result:
    """What a finished process returns to whoever waits on it."""

    pid: int
    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    usage: Usage
    timings: Timings
    preemptions: int
    error: str | None = None
    logprobs: list[StepLogprobs] | None = None  # one per token, when they were asked for


@dataclass(frozen=True)
class TextPiece:
    """A streamed piece of output: new text, the token ids that produced it and, when asked
    for, their log-probabilities."""

    text: str
    token_ids: list[int]
    logprobs: tuple[StepLogprobs, ...] = ()


Event = TextPiece | Result
Listener = Callable[[Event], None]


@dataclass(eq=False)
class Process:
    """The TCB. `tokens` is prompt + output; the KV cache holds `num_computed_tokens` of them."""

    pid: int
    owner: str
    model: str
    priority: int
    params: SamplingParams
    prompt_tokens: list[int]
    output: OutputText
    sampler: Sampler
    arrival: int  # admission order, the tie-breaker of every policy
    spawned_at: float
    state: ProcessState = ProcessState.NEW
    tokens: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    cached_prompt_tokens: int = 0  # the start of the prompt that came from the prefix cache
    slot: int | None = None
    finish_reason: FinishReason | None = None
    error: str | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    run_s: float = 0.0
    preemptions: int = 0
    spawn_tick: int = 0
    first_run_tick: int | None = None
    logprobs: list[StepLogprobs] = field(default_factory=list)
    fork_of: Process | None = None  # the process this one was forked from
    forks: list[Process] = field(default_factory=list)  # forks waiting for our first token
    result: Result | None = None
    done: threading.Event = field(default_factory=threading.Event)
    # Held by the kernel while it changes the output and publishes, and by subscribe(), so a
    # subscriber sees every event exactly once however late it arrives.
    lock: threading.Lock = field(default_factory=threading.Lock)
    _listeners: list[Listener] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.tokens:
            self.tokens = list(self.prompt_tokens)

    @property
    def num_output_tokens(self) -> int:
        return len(self.tokens) - len(self.prompt_tokens)

    @property
    def num_pending_tokens(self) -> int:
        """Tokens known but not yet in the KV cache: the prompt's rest, or the last sampled one."""
        return len(self.tokens) - self.num_computed_tokens

    @property
    def reserved_tokens(self) -> int:
        """The most KV this process can ever need: its prompt plus max_tokens."""
        return len(self.prompt_tokens) + self.params.max_tokens

    @property
    def is_prefilling(self) -> bool:
        return self.num_computed_tokens < len(self.prompt_tokens)

    @property
    def alive(self) -> bool:
        return self.state is not ProcessState.TERMINATED

    def make_result(self) -> Result:
        """The Result of this ended process (finish_reason and finished_at are set)."""
        assert self.finished_at is not None and self.finish_reason is not None
        total = self.finished_at - self.spawned_at
        ttft = None if self.first_token_at is None else self.first_token_at - self.spawned_at
        return Result(
            pid=self.pid,
            text=self.output.text,
            token_ids=self.tokens[len(self.prompt_tokens) :],
            finish_reason=self.finish_reason,
            usage=Usage(len(self.prompt_tokens), self.num_output_tokens, self.cached_prompt_tokens),
            timings=Timings(
                waiting_s=max(0.0, total - self.run_s),
                time_to_first_token_s=ttft,
                run_s=self.run_s,
                total_s=total,
            ),
            preemptions=self.preemptions,
            error=self.error,
            logprobs=None if self.params.logprobs is None else list(self.logprobs),
        )

    def subscribe(self, listener: Listener) -> None:
        """Deliver this process's events to `listener` (called on the kernel's thread; it must
        not block). Output so far arrives first, as one TextPiece."""
        with self.lock:
            released = self.output.released_text
            generated = self.tokens[len(self.prompt_tokens) :]
            if released or generated:
                listener(TextPiece(released, generated))
            if self.result is not None:
                listener(self.result)
            else:
                self._listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def publish(self, event: Event) -> None:
        """Hand `event` to every subscriber. The caller holds `lock`."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken subscriber must not stop the kernel
                logger.exception("pid %d: event listener failed", self.pid)
        if isinstance(event, Result):
            self._listeners.clear()


@dataclass(frozen=True)
class ProcessInfo:
    """A read-only view of one process: a row of `ps`."""

    pid: int
    owner: str
    model: str
    priority: int
    state: ProcessState
    prompt_tokens: int
    output_tokens: int
    max_tokens: int
    preemptions: int
    finish_reason: FinishReason | None

    @classmethod
    def of(cls, process: Process) -> ProcessInfo:
        return cls(
            pid=process.pid,
            owner=process.owner,
            model=process.model,
            priority=process.priority,
            state=process.state,
            prompt_tokens=len(process.prompt_tokens),
            output_tokens=process.num_output_tokens,
            max_tokens=process.params.max_tokens,
            preemptions=process.preemptions,
            finish_reason=process.finish_reason,
        )
