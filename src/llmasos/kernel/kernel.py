"""The kernel: the process table, the syscalls, and the tick thread that applies each step plan.

Threads: callers (SDK, server) spawn and signal from any thread; they only validate, build the
Process and queue a command. One tick thread owns the engine's compute, the memory books and
every Process mutation; commands are applied between ticks, so a step never races a signal. A
tick compacts the slots, asks the planner for a plan (kernel/planner.py), applies it and runs
its batch as one engine step (kernel/tick.py). A syscall that uses the engine from the caller's
thread (tokenising) counts as in flight; close() waits for those before it frees the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence

from llmasos.engine.base import Engine, Sampler
from llmasos.errors import (
    EngineError,
    InvalidRequestError,
    KernelClosedError,
    ProcessTerminatedError,
)
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.lifecycle import ForkCommand, Lifecycle, SignalCommand
from llmasos.kernel.limits import (
    check_fits,
    check_forks,
    check_priority,
    check_prompt,
    check_sampling,
)
from llmasos.kernel.memory import MemoryUsage
from llmasos.kernel.output import OutputText
from llmasos.kernel.pager import Pager
from llmasos.kernel.planner import RUNNABLE_STATES, Planner, StepPlan
from llmasos.kernel.process import FinishReason, Process, ProcessState, Signal
from llmasos.kernel.quota import Admission
from llmasos.kernel.scheduler import make_policy
from llmasos.kernel.stats import KernelStats, KernelStatus, MemoryReport, TickRecord
from llmasos.kernel.status import kernel_status
from llmasos.kernel.table import ProcessTable
from llmasos.kernel.tick import StepRunner
from llmasos.sampling import SamplingParams

logger = logging.getLogger(__name__)

Command = Process | SignalCommand | ForkCommand  # what syscalls queue for the tick thread
STALL_WAIT_S = 0.05


class Kernel:
    """Runs processes on one engine under one scheduling policy."""

    def __init__(
        self,
        engine: Engine,
        config: KernelConfig | None = None,
        *,
        pids: Iterator[int] | None = None,
    ) -> None:
        """`pids` lets kernels that serve side by side (one per loaded model) share one pid
        space."""
        self.engine = engine
        self.config = config = config or KernelConfig()
        config.check_against(engine.info)
        info = engine.info
        self.planner = Planner(
            make_policy(config.policy, quantum=config.quantum),
            max_running=config.max_running,
            max_batch_tokens=info.max_batch_tokens,
            min_prefix_tokens=config.min_prefix_tokens,
        )
        self.pager = Pager.for_engine(engine, config)
        self.memory = self.pager.memory
        self.admission = Admission(
            config.page_size, config.max_pages_per_process, config.max_pages_per_owner
        )
        self.stats = KernelStats()
        self.table = ProcessTable(
            max_live=config.max_live_processes, keep_finished=config.keep_finished
        )
        self.lifecycle = Lifecycle(
            engine, self.pager, self.planner.policy, self.table, self.admission, self.stats
        )
        self.ticks = StepRunner(
            engine,
            self.pager,
            self.planner.policy,
            self.lifecycle,
            self.stats,
            trace_length=config.trace_length,
        )
        self._pids = pids if pids is not None else itertools.count(1)
        self._arrivals = itertools.count()
        self._commands: list[Command] = []
        self._cond = threading.Condition()
        self._paused = 0
        self._calls = 0  # syscalls using the engine from a caller's thread right now
        self._closing = False  # no new syscalls
        self._stopping = False  # the tick thread ends
        self._thread = threading.Thread(target=self._run, name="llmasos-kernel", daemon=True)
        self._thread.start()

    @property
    def tick_count(self) -> int:
        return self.ticks.tick_count

    @property
    def trace(self) -> deque[TickRecord]:
        """The most recent engine steps (trace_length of them)."""
        return self.ticks.trace

    # -- the system-call surface (any thread) ---------------------------------------------

    def spawn(
        self,
        prompt: object,
        params: SamplingParams,
        *,
        priority: object = 0,
        owner: str = "local",
        max_pages: int | None = None,
    ) -> Process:
        """Validate, create and queue a process (READY at the next tick; an interactive one cuts
        a background step short); one needing over `max_pages` KV pages is refused."""
        priority = check_priority(priority)
        check_sampling(params, self.engine.info)
        text = check_prompt(prompt)
        with self._syscall():
            tokens = self.engine.tokenize(text)
            check_fits(len(tokens), params, self.engine.info)
            pages = self.admission.pages_for(len(tokens) + params.max_tokens)
            self.admission.check(owner, pages, max_pages)
            seed = params.seed if params.seed is not None else random.randrange(2**32 - 1)
            sampler = self.engine.new_sampler(params, seed)
            process = self._new_process(
                owner, priority, params, tokens, OutputText(params.stop), sampler
            )
            with self._cond:  # entered and queued at once: no signal can overtake the spawn
                try:
                    self.table.add(process)
                except Exception:
                    process.sampler.close()
                    raise
                self._commands.append(process)
                self.ticks.cuts.arrived(process)
                self._cond.notify_all()
        return process

    def fork(self, pid: int, n: int, *, seeds: Sequence[int] | None = None) -> list[Process]:
        """`n` children of process `pid` that share what it computed so far (copied, never
        recomputed) and continue with their own sampler, drawing with `seeds` (default:
        random). Children of a process that has not produced its first token draw theirs from
        its logits: its prompt is computed once for all of them."""
        chosen = check_forks(n, seeds)
        self.table.get(pid)  # NoSuchProcessError before anything is queued
        command = ForkCommand(pid, chosen, self._forked)
        with self._cond:
            if self._closing:
                raise KernelClosedError()
            self._commands.append(command)
            self._cond.notify_all()
        command.done.wait()
        if command.error is not None:
            raise command.error
        return command.children

    def _forked(self, parent: Process, seed: int) -> Process:
        """A child of `parent` in its state, drawing with `seed` (on the tick thread)."""
        params = dataclasses.replace(parent.params, seed=seed)
        child = self._new_process(
            parent.owner,
            parent.priority,
            params,
            parent.prompt_tokens,
            parent.output.copy(),
            parent.sampler.fork(seed),
        )
        child.tokens = list(parent.tokens)
        child.fork_of = parent
        return child

    def _new_process(
        self,
        owner: str,
        priority: int,
        params: SamplingParams,
        prompt_tokens: list[int],
        output: OutputText,
        sampler: Sampler,
    ) -> Process:
        return Process(
            pid=next(self._pids),
            owner=owner,
            model=self.engine.info.model_name,
            priority=priority,
            params=params,
            prompt_tokens=prompt_tokens,
            output=output,
            sampler=sampler,
            arrival=next(self._arrivals),
            spawned_at=time.monotonic(),
        )

    def tokenize(self, text: object) -> list[int]:
        """Token ids of `text` as the engine sees a prompt."""
        if not isinstance(text, str):
            raise InvalidRequestError("text", f"must be a string, got {type(text).__name__}")
        with self._syscall():
            return self.engine.tokenize(text)

    def signal(self, pid: int, signal: Signal, *, wait: bool = True) -> None:
        """Deliver a signal; with wait (the default), return once the tick thread applied it."""
        process = self.table.get(pid)
        with self._cond:
            if not process.alive:
                raise ProcessTerminatedError(pid, signal.value)
            if self._closing:
                raise KernelClosedError()
            command = SignalCommand(pid, signal, threading.Event())
            self._commands.append(command)
            self._cond.notify_all()
        if not wait:
            return
        command.done.wait()
        if command.error is not None:
            raise command.error

    def renice(self, pid: int, priority: int) -> None:
        """Give a live process another priority; the scheduler ranks it anew at the next step."""
        priority, process = check_priority(priority), self.table.get(pid)
        with self._cond:
            if not process.alive:
                raise ProcessTerminatedError(pid, "renice")
            process.priority = priority

    def get(self, pid: int) -> Process:
        return self.table.get(pid)

    def processes(self) -> list[Process]:
        return self.table.all()

    def has(self, pid: int) -> bool:
        return self.table.has(pid)

    @property
    def num_live_processes(self) -> int:
        """Processes spawned and not yet ended."""
        return self.table.num_live

    def memory_usage(self) -> MemoryUsage:
        return self.memory.usage()

    def status(self) -> KernelStatus:
        return kernel_status(self)

    def memory_report(self) -> MemoryReport:
        """Pages, slots, prefix-cache hits and swap use, with each live process's share."""
        live = self.table.live()
        return self.pager.report(live, lambda p: self.admission.pages_for(p.reserved_tokens))

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the tick loop (after the step in flight) so several spawns or signals are
        seen by one scheduling decision."""
        with self._cond:
            self._paused += 1
        try:
            yield
        finally:
            with self._cond:
                self._paused -= 1
                self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once close() was called; no new process is accepted."""
        return self._closing

    def close(self) -> None:
        """Refuse new syscalls, wait for those in flight, kill every live process, stop the
        tick thread and free the engine."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            while self._calls:
                self._cond.wait()
            self._stopping = True
            self._cond.notify_all()
        self._thread.join()
        self.pager.close()
        self.engine.close()

    @contextlib.contextmanager
    def _syscall(self) -> Iterator[None]:
        with self._cond:
            if self._closing:
                raise KernelClosedError()
            self._calls += 1
        try:
            yield
        finally:
            with self._cond:
                self._calls -= 1
                self._cond.notify_all()

    # -- the tick thread ------------------------------------------------------------------

    def _run(self) -> None:
        stalled = False
        while True:
            with self._cond:
                if stalled:  # nothing could run: wait for a signal or a spawn, not spin
                    self._cond.wait(STALL_WAIT_S)
                # Commands are applied even while paused (a fork inside paused() needs its
                # answer); only ticks wait for the pause to end.
                while not (self._stopping or self._commands) and (
                    self._paused or not self._has_runnable()
                ):
                    self._cond.wait()
                if self._stopping:
                    break
                commands, self._commands = self._commands, []
                self.ticks.cuts.commands_taken()
                paused = self._paused > 0
            stalled = False
            for command in commands:
                self._apply_command(command)
            plan = StepPlan()
            try:
                if not paused and self._has_runnable():
                    self.pager.compact(self._owner_of)
                    plan = self.planner.plan(self.table.live(), self.pager)
                    stalled = not self.ticks.run(plan)
            except Exception as fault:  # a kernel bug must not leave every waiter hanging
                message = self._incident(fault)
                for process in self.table.live():
                    if process.pid in plan.involved or process.state is ProcessState.RUNNING:
                        self._end(process, FinishReason.ERROR, message)
        self._shutdown()

    def _apply_command(self, command: Command) -> None:
        """A spawn, a signal or a fork; if it fails, only that one gets the error."""
        try:
            if isinstance(command, Process):
                self.lifecycle.arrive(command, self.tick_count)
            elif isinstance(command, ForkCommand):
                self.lifecycle.fork(command, self.tick_count)
            else:
                self.lifecycle.apply_signal(command)
        except Exception as fault:
            message = self._incident(fault)
            if isinstance(command, Process):
                self._end(command, FinishReason.ERROR, message)
            elif not command.done.is_set():
                command.error = EngineError(message)
                command.done.set()

    @staticmethod
    def _incident(fault: Exception) -> str:
        """Log an unexpected error under an incident id; the message a process gets instead."""
        incident = uuid.uuid4().hex[:12]
        logger.error("kernel tick failed (incident %s)", incident, exc_info=fault)
        return f"internal error (incident {incident}); the server log has the details"

    def _end(self, process: Process, reason: FinishReason, message: str) -> None:
        """End `process` (if still alive) with `message`, logging rather than raising."""
        if not process.alive:
            return
        try:
            self.lifecycle.finish(process, reason, error=message)
        except Exception:
            logger.exception("pid %d could not be ended cleanly", process.pid)

    def _has_runnable(self) -> bool:
        return any(p.state in RUNNABLE_STATES for p in self.table.live())

    def _owner_of(self, slot: int) -> Process:
        pid = self.memory.owner(slot)
        assert pid is not None
        return self.table.get(pid)

    def _shutdown(self) -> None:
        with self._cond:
            commands, self._commands = self._commands, []
        for command in commands:
            if not isinstance(command, Process):
                command.error = KernelClosedError()
                command.done.set()
        for process in self.table.live():
            self._end(process, FinishReason.KILLED, "kernel closed")
