"""The Python SDK: `llmasos.Client` runs an in-process kernel with the default model."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llmasos.engine.base import Engine
from llmasos.engine.factory import EngineOptions, load_engine
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.kernel import Kernel, Signal
from llmasos.kernel.process import Event, Process, ProcessState, Result, TextPiece
from llmasos.sampling import SamplingParams


@dataclass(frozen=True)
class ProcessInfo:
    """One row of `ps`."""

    pid: int
    owner: str
    model: str
    priority: int
    state: ProcessState
    prompt_tokens: int
    output_tokens: int
    max_tokens: int
    preemptions: int
    finish_reason: str | None


class ProcessHandle:
    """A spawned process: wait for it, stream it, or signal it."""

    def __init__(self, kernel: Kernel, process: Process, events: queue.SimpleQueue[Event]) -> None:
        self._kernel = kernel
        self._process = process
        self._events = events

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def state(self) -> ProcessState:
        return self._process.state

    def wait(self, timeout: float | None = None) -> Result:
        """Block until the process ends; return its text, token ids, finish reason, usage and
        timings. Raises TimeoutError if `timeout` seconds pass first."""
        if not self._process.done.wait(timeout):
            raise TimeoutError(f"pid {self.pid} still running after {timeout} s")
        assert self._process.result is not None
        return self._process.result

    def stream(self) -> Iterator[str]:
        """Yield text pieces as they are generated, until the process ends."""
        while True:
            event = self._events.get()
            if isinstance(event, TextPiece):
                if event.text:
                    yield event.text
            else:
                return

    def kill(self) -> None:
        self._kernel.signal(self.pid, Signal.KILL)

    def suspend(self) -> None:
        self._kernel.signal(self.pid, Signal.SUSPEND)

    def resume(self) -> None:
        self._kernel.signal(self.pid, Signal.RESUME)

    def __repr__(self) -> str:
        return f"<ProcessHandle pid={self.pid} state={self.state.value}>"


class Client:
    """An LLMasOS session. `Client()` starts an in-process kernel with the default model.

    policy       fcfs | sjf | rr | priority
    model        a model name or a path to a GGUF file (default: the packaged Gemma 3 270M)
    max_running  the most processes in one engine step
    quantum      rr only: tokens a process generates before it yields its place
    max_live_processes, keep_finished: see KernelConfig
    Other keyword arguments size the engine (num_slots, context_length, max_batch_tokens,
    n_threads). `engine` runs the kernel on an engine you built yourself instead.
    """

    def __init__(
        self,
        policy: str = "fcfs",
        *,
        model: str | None = None,
        max_running: int = 16,
        quantum: int = 16,
        max_live_processes: int = 4096,
        keep_finished: int = 1024,
        engine: Engine | None = None,
        **engine_options: Any,
    ) -> None:
        config = KernelConfig(
            policy=policy,
            max_running=max_running,
            quantum=quantum,
            max_live_processes=max_live_processes,
            keep_finished=keep_finished,
        )
        if engine is None:
            engine = load_engine(model, EngineOptions(**engine_options))
        self.kernel = Kernel(engine, config)

    @property
    def model(self) -> str:
        return self.kernel.engine.info.model_name

    def spawn(
        self,
        prompt: str,
        *,
        priority: int = 0,
        model: str | None = None,
        owner: str = "local",
        **sampling: Any,
    ) -> ProcessHandle:
        """Start a generation as a process and return its handle at once.

        Sampling keywords: max_tokens, temperature, top_k, top_p, min_p, repeat_penalty,
        repeat_last_n, seed, stop.
        """
        params = SamplingParams.build(**sampling)
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        process = self.kernel.spawn(prompt, params, priority=priority, owner=owner, model=model)
        process.subscribe(events.put)
        return ProcessHandle(self.kernel, process, events)

    def generate_text(self, prompt: str, *, stream: bool = False, **options: Any) -> Any:
        """Generate a completion of `prompt`: the text, or with stream=True an iterator of
        text pieces. Takes spawn()'s keywords."""
        handle = self.spawn(prompt, **options)
        if stream:
            return handle.stream()
        return handle.wait().text

    def ps(self) -> list[ProcessInfo]:
        """Every process the kernel knows, live or ended, oldest first."""
        return [
            ProcessInfo(
                pid=p.pid,
                owner=p.owner,
                model=p.model,
                priority=p.priority,
                state=p.state,
                prompt_tokens=len(p.prompt_tokens),
                output_tokens=p.num_output_tokens,
                max_tokens=p.params.max_tokens,
                preemptions=p.preemptions,
                finish_reason=p.finish_reason.value if p.finish_reason else None,
            )
            for p in self.kernel.processes()
        ]

    def close(self) -> None:
        """Stop the kernel: live processes are killed and the model is freed."""
        self.kernel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
