"""A process's life outside scheduling: arrival and admission, signals, emitted tokens, exit.

Runs on the kernel's tick thread only. Admission: a new process waits (NEW) until its owner's
page quota admits it, then becomes READY for the planner. Exit: a completed process's KV stays
as prefix cache, a killed or failed one's is freed; its result is published and it is retired
from the table, which may admit a waiting process of the same owner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llmasos.engine.base import Engine, TokenLogprobs
from llmasos.errors import KernelBusyError, NoSuchProcessError, ProcessTerminatedError
from llmasos.kernel.pager import Pager
from llmasos.kernel.process import (
    FinishReason,
    Process,
    ProcessState,
    Signal,
    StepLogprobs,
    TextPiece,
    TokenProb,
)
from llmasos.kernel.quota import Admission
from llmasos.kernel.scheduler import Policy
from llmasos.kernel.stats import KernelStats
from llmasos.kernel.table import ProcessTable


@dataclass
class SignalCommand:
    """A signal queued for the tick thread; `done` is set once it was applied."""

    pid: int
    signal: Signal
    done: threading.Event
    error: Exception | None = None


@dataclass
class ForkCommand:
    """A fork queued for the tick thread, where the parent's state is still: `make(parent,
    seed)` builds each child; `done` is set with the children or the error."""

    pid: int
    seeds: list[int]
    make: Callable[[Process, int], Process]
    done: threading.Event = field(default_factory=threading.Event)
    children: list[Process] = field(default_factory=list)
    error: Exception | None = None


class Lifecycle:
    def __init__(
        self,
        engine: Engine,
        pager: Pager,
        policy: Policy,
        table: ProcessTable,
        admission: Admission,
        stats: KernelStats,
    ) -> None:
        self.engine = engine
        self.pager = pager
        self.policy = policy
        self.table = table
        self.admission = admission
        self.stats = stats
        self._unadmitted: list[Process] = []  # waiting for their owner's quota

    def arrive(self, process: Process, tick: int) -> None:
        """A spawned process reaches the tick thread (a kill may have overtaken it)."""
        if not process.alive:
            return
        process.spawn_tick = tick
        self._unadmitted.append(process)
        self.admit_waiting()

    def apply_signal(self, command: SignalCommand) -> None:
        try:
            process = self.table.get(command.pid)
        except NoSuchProcessError:  # it ended and was forgotten since the signal was sent
            command.error = ProcessTerminatedError(command.pid, command.signal.value)
            command.done.set()
            return
        if not process.alive:
            command.error = ProcessTerminatedError(process.pid, command.signal.value)
        elif command.signal is Signal.KILL:
            self.finish(process, FinishReason.KILLED)
        elif command.signal is Signal.SUSPEND:
            process.state = ProcessState.SUSPENDED
        elif command.signal is Signal.RESUME and process.state is ProcessState.SUSPENDED:
            process.state = self._waiting_state(process)
            self.admit_waiting()  # it may have waited for its owner's quota
        command.done.set()

    def fork(self, command: ForkCommand, tick: int) -> None:
        """Create the children. Forks of a process that has not sampled its first token wait
        for it (WAITING) and draw their own first token from the same logits, then copy its
        prompt's KV: the prompt is computed once. Forks of a process already generating copy
        its KV up to its last sampled token and go on from there."""
        try:
            parent = self.table.get(command.pid)
        except NoSuchProcessError as error:
            command.error = error
        else:
            if not parent.alive:
                command.error = ProcessTerminatedError(parent.pid, "fork")
            else:
                self._fork(parent, command, tick)
        command.done.set()

    def _fork(self, parent: Process, command: ForkCommand, tick: int) -> None:
        if self.table.num_live + len(command.seeds) > self.table.max_live:
            command.error = KernelBusyError(self.table.max_live)
            return
        waits = parent.num_output_tokens == 0
        for seed in command.seeds:
            child = command.make(parent, seed)
            self.table.add(child)
            self.arrive(child, tick)
            command.children.append(child)
            if waits and child.state is ProcessState.READY:
                child.state = ProcessState.WAITING
                parent.forks.append(child)

    def first_tokens_of_forks(self, parent: Process, index: int) -> int:
        """`parent` sampled its first token from item `index` of the step just run: each fork
        still waiting draws its own from the same logits. How many did."""
        forks, parent.forks = parent.forks, []
        drawn = 0
        for child in forks:
            if child.state is ProcessState.WAITING:
                token = self.engine.sample_again(index, child.sampler)
                child.state = ProcessState.READY
                self.emit(child, token)
                drawn += 1
        return drawn

    def _waiting_state(self, process: Process) -> ProcessState:
        if not self.admission.is_admitted(process.pid):
            return ProcessState.NEW
        return ProcessState.SWAPPED if process.slot is None else ProcessState.READY

    def admit_waiting(self) -> None:
        """Admit, in arrival order, the waiting processes whose owner's quota now allows."""
        for process in list(self._unadmitted):
            if process.state is ProcessState.SUSPENDED:
                continue
            pages = self.admission.pages_for(process.reserved_tokens)
            if self.admission.try_admit(process.pid, process.owner, pages):
                self._unadmitted.remove(process)
                process.state = ProcessState.READY

    def emit(self, process: Process, token: int) -> None:
        """The process sampled `token`: stream its text, and end it on a stop or its limit."""
        if process.first_token_at is None:
            process.first_token_at = time.monotonic()
            self.stats.time_to_first_token_s.observe(process.first_token_at - process.spawned_at)
        owners = self.stats.owner_generated_tokens
        owners[process.owner] = owners.get(process.owner, 0) + 1
        end_of_generation = self.engine.is_end_of_generation(token)
        data = b"" if end_of_generation else self.engine.token_bytes(token)
        step = self._logprobs(process.sampler.take_logprobs())
        with process.lock:
            process.tokens.append(token)
            if step is not None:
                process.logprobs.append(step)
            text = process.output.feed(data)
            process.publish(TextPiece(text, [token], () if step is None else (step,)))
        if process.sampler.failure is not None:
            self.finish(process, FinishReason.ERROR, error=process.sampler.failure)
        elif process.output.stopped or end_of_generation:
            self.finish(process, FinishReason.STOP)
        elif process.num_output_tokens >= process.params.max_tokens:
            self.finish(process, FinishReason.LENGTH)

    def _logprobs(self, raw: TokenLogprobs | None) -> StepLogprobs | None:
        """The sampler's log-probabilities with each token's bytes (read here, on the tick
        thread, where the engine may be used)."""
        if raw is None:
            return None

        def named(token: int, logprob: float) -> TokenProb:
            piece = (
                b"" if self.engine.is_end_of_generation(token) else self.engine.token_bytes(token)
            )
            return TokenProb(token, piece, logprob)

        return StepLogprobs(named(raw.token, raw.logprob), tuple(named(t, lp) for t, lp in raw.top))

    @staticmethod
    def _unlink_forks(process: Process) -> None:
        """An ending process's waiting forks go on without its first token; an ending fork
        leaves its parent's list."""
        for child in process.forks:
            if child.state is ProcessState.WAITING:
                child.state = ProcessState.READY
        process.forks.clear()
        parent = process.fork_of
        if parent is not None and process in parent.forks:
            parent.forks.remove(process)

    def finish(self, process: Process, reason: FinishReason, error: str | None = None) -> None:
        completed = reason in (FinishReason.STOP, FinishReason.LENGTH)
        self._unlink_forks(process)
        try:
            self.pager.release(process, keep_as_cache=completed)
        finally:
            process.sampler.close()
            self.policy.forget(process)
            with process.lock:
                tail = process.output.finish()
                if tail:
                    process.publish(TextPiece(tail, []))
                process.state = ProcessState.TERMINATED
                process.finish_reason = reason
                process.error = error
                process.finished_at = time.monotonic()
                process.result = process.make_result()
                process.publish(process.result)
            process.done.set()
            self.table.retire(process)
            if process in self._unadmitted:
                self._unadmitted.remove(process)
            self.admission.release(process.pid)
            self.admit_waiting()
