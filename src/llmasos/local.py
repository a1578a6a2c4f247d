"""The in-process backend: a kernel running in this Python process."""

from __future__ import annotations

import queue
from collections.abc import Iterator

from llmasos.chat import chat_spawn_args
from llmasos.errors import UnknownModelError
from llmasos.handles import Backend, ProcessHandle
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import Event, Process, ProcessInfo, ProcessState, Result, Signal
from llmasos.kernel.stats import KernelStatus, MemoryReport
from llmasos.models.default import canonical_model_name
from llmasos.sampling import SamplingParams


class LocalProcessHandle(ProcessHandle):
    def __init__(self, kernel: Kernel, process: Process) -> None:
        super().__init__(process.pid)
        self._kernel = kernel
        self._process = process
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        process.subscribe(self._queue.put)

    @property
    def state(self) -> ProcessState:
        return self._process.state

    def wait(self, timeout: float | None = None) -> Result:
        if not self._process.done.wait(timeout):
            raise TimeoutError(f"pid {self.pid} still running after {timeout} s")
        assert self._process.result is not None
        return self._process.result

    def _events(self) -> Iterator[Event]:
        while True:
            event = self._queue.get()
            yield event
            if isinstance(event, Result):
                return

    def _signal(self, signal: Signal) -> None:
        self._kernel.signal(self.pid, signal)

    def _backend_fork(self, n: int, seeds: list[int] | None) -> list[ProcessHandle]:
        children = self._kernel.fork(self.pid, n, seeds=seeds)
        return [LocalProcessHandle(self._kernel, child) for child in children]


class LocalBackend(Backend):
    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    @property
    def model(self) -> str:
        return self.kernel.engine.info.model_name

    def spawn(
        self,
        prompt: str,
        sampling: dict[str, object],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle:
        params = SamplingParams.build(**sampling)  # type: ignore[arg-type]
        if model is not None and canonical_model_name(model) != self.model:
            raise UnknownModelError(model, [self.model])
        process = self.kernel.spawn(prompt, params, priority=priority, max_pages=max_pages)
        return LocalProcessHandle(self.kernel, process)

    def spawn_chat(
        self,
        messages: object,
        sampling: dict[str, object],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle:
        prompt, stop = chat_spawn_args(messages, sampling.get("stop"), self.kernel.engine.info)
        return self.spawn(
            prompt, {**sampling, "stop": stop}, priority=priority, model=model, max_pages=max_pages
        )

    def attach(self, pid: int) -> ProcessHandle:
        return LocalProcessHandle(self.kernel, self.kernel.get(pid))

    def ps(self) -> list[ProcessInfo]:
        return [ProcessInfo.of(p) for p in self.kernel.processes()]

    def status(self) -> KernelStatus:
        return self.kernel.status()

    def memory(self) -> MemoryReport:
        return self.kernel.memory_report()

    def close(self) -> None:
        self.kernel.close()
