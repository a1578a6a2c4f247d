"""Process handles: what `Client.spawn` returns, whether the kernel is in-process or remote."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from llmasos.kernel.process import Event, ProcessInfo, ProcessState, Result, Signal, TextPiece
from llmasos.kernel.stats import KernelStatus, MemoryReport


class ProcessHandle(ABC):
    """A spawned process: wait for it, stream it, or signal it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @property
    @abstractmethod
    def state(self) -> ProcessState:
        """The process's state now."""

    @abstractmethod
    def wait(self, timeout: float | None = None) -> Result:
        """Block until the process ends; return its text, token ids, finish reason, usage and
        timings. Raises TimeoutError if `timeout` seconds pass first."""

    @abstractmethod
    def _events(self) -> Iterator[Event]:
        """The process's events from its start, ending with its Result."""

    @abstractmethod
    def _signal(self, signal: Signal) -> None: ...

    def stream(self) -> Iterator[str]:
        """Yield text pieces as they are generated, until the process ends."""
        for event in self._events():
            if isinstance(event, TextPiece) and event.text:
                yield event.text

    def fork(self, n: int, *, seeds: list[int] | None = None) -> list[ProcessHandle]:
        """`n` child processes that share what this one computed so far (copied, not
        recomputed) and continue with their own sampler, drawing with `seeds` (default:
        random). Forked before its first token, the prompt is computed once for all."""
        return self._backend_fork(n, seeds)

    @abstractmethod
    def _backend_fork(self, n: int, seeds: list[int] | None) -> list[ProcessHandle]: ...

    def kill(self) -> None:
        """End the process now; its result reports finish_reason "killed"."""
        self._signal(Signal.KILL)

    def suspend(self) -> None:
        """Stop scheduling the process until resume(); its KV state is kept (or swapped)."""
        self._signal(Signal.SUSPEND)

    def resume(self) -> None:
        self._signal(Signal.RESUME)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} state={self.state.value}>"


class ModelCalls(ABC):
    """Where model calls run (a Client's backend; an agent's calls on a server's models)."""

    @abstractmethod
    def spawn(
        self,
        prompt: str,
        sampling: dict[str, object],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle: ...

    @abstractmethod
    def spawn_chat(
        self,
        messages: object,
        sampling: dict[str, object],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle:
        """Like spawn, with chat messages rendered by the model's chat template."""


class Backend(ModelCalls):
    """Where a Client's processes run: an in-process kernel or an LLMasOS server."""

    @property
    @abstractmethod
    def model(self) -> str: ...

    @abstractmethod
    def attach(self, pid: int) -> ProcessHandle:
        """A handle on an existing process."""

    @abstractmethod
    def ps(self) -> list[ProcessInfo]: ...

    @abstractmethod
    def status(self) -> KernelStatus: ...

    @abstractmethod
    def memory(self) -> MemoryReport: ...

    @abstractmethod
    def close(self) -> None: ...
