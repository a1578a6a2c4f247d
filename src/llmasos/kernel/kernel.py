"""The kernel: a process table and the tick loop that runs it on an engine.

Threads: callers (SDK, server) spawn and signal from any thread; they only validate, build the
Process and queue a command. One tick thread owns the engine, the memory books and every Process
mutation. Commands are applied between ticks, so a step never races a signal.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass

from llmasos.engine.base import BatchItem, Engine
from llmasos.errors import (
    ContextLengthError,
    EngineError,
    InvalidRequestError,
    KernelBusyError,
    KernelClosedError,
    NoSuchProcessError,
    ProcessTerminatedError,
    UnknownModelError,
)
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.memory import MemoryManager, MemoryUsage
from llmasos.kernel.output import OutputText
from llmasos.kernel.process import (
    FinishReason,
    Process,
    ProcessState,
    Result,
    Signal,
    TextPiece,
    Timings,
    Usage,
)
from llmasos.kernel.scheduler import make_policy
from llmasos.kernel.stats import KernelStats, KernelStatus
from llmasos.models.default import canonical_model_name
from llmasos.sampling import SamplingParams

logger = logging.getLogger(__name__)

MAX_PRIORITY = 1000
_RUNNABLE = (ProcessState.RUNNING, ProcessState.READY, ProcessState.SWAPPED)


@dataclass(frozen=True)
class TickRecord:
    """One engine step: which processes took part and how many tokens each fed."""

    tick: int
    duration_s: float
    batch: tuple[tuple[int, int], ...]  # (pid, tokens fed)
    generated_tokens: int


@dataclass
class _SignalCommand:
    pid: int
    signal: Signal
    done: threading.Event
    error: Exception | None = None


class Kernel:
    """Runs processes on one engine under one scheduling policy."""

    def __init__(self, engine: Engine, config: KernelConfig | None = None) -> None:
        self.engine = engine
        self.config = config or KernelConfig()
        self.config.check_against(engine.info)
        self.policy = make_policy(self.config.policy, quantum=self.config.quantum)
        self.memory = MemoryManager(engine.info.num_slots)
        self.tick_count = 0
        self.trace: deque[TickRecord] = deque(maxlen=self.config.trace_length)
        self.stats = KernelStats()
        self._table: dict[int, Process] = {}
        self._live: set[int] = set()
        self._finished: deque[int] = deque()
        self._pids = itertools.count(1)
        self._arrivals = itertools.count()
        self._commands: list[Process | _SignalCommand] = []
        self._cond = threading.Condition()
        self._paused = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="llmasos-kernel", daemon=True)
        self._thread.start()

    # -- the system-call surface (any thread) ---------------------------------------------

    def spawn(
        self,
        prompt: object,
        params: SamplingParams,
        *,
        priority: object = 0,
        owner: str = "local",
        model: str | None = None,
    ) -> Process:
        """Validate, create and queue a process; it becomes READY at the next tick."""
        if self._closing:
            raise KernelClosedError()
        if model is not None and canonical_model_name(model) != self.engine.info.model_name:
            raise UnknownModelError(model, [self.engine.info.model_name])
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidRequestError(
                "priority", f"must be an integer, got {type(priority).__name__}"
            )
        if abs(priority) > MAX_PRIORITY:
            raise InvalidRequestError(
                "priority", f"must be between {-MAX_PRIORITY} and {MAX_PRIORITY}, got {priority}"
            )
        tokens = self._prompt_tokens(prompt)
        context = self.engine.info.context_length
        if len(tokens) + params.max_tokens > context:
            raise ContextLengthError(len(tokens), params.max_tokens, context)
        seed = params.seed if params.seed is not None else random.randrange(2**32 - 1)
        with self._cond:
            if self._closing:
                raise KernelClosedError()
            if len(self._live) >= self.config.max_live_processes:
                raise KernelBusyError(self.config.max_live_processes)
            process = Process(
                pid=next(self._pids),
                owner=owner,
                model=self.engine.info.model_name,
                priority=priority,
                params=params,
                prompt_tokens=tokens,
                output=OutputText(params.stop),
                sampler=self.engine.new_sampler(params, seed),
                arrival=next(self._arrivals),
                spawned_at=time.monotonic(),
            )
            self._table[process.pid] = process
            self._live.add(process.pid)
            self._commands.append(process)
            self._cond.notify()
        return process

    def signal(self, pid: int, signal: Signal, *, wait: bool = True) -> None:
        """Deliver a signal; with wait (the default), return once the tick thread applied it."""
        with self._cond:
            if pid not in self._table:
                raise NoSuchProcessError(pid)
            if not self._table[pid].alive:
                raise ProcessTerminatedError(pid, signal.value)
            if self._closing:
                raise KernelClosedError()
            command = _SignalCommand(pid, signal, threading.Event())
            self._commands.append(command)
            self._cond.notify()
        if not wait:
            return
        command.done.wait()
        if command.error is not None:
            raise command.error

    def get(self, pid: int) -> Process:
        with self._cond:
            if pid not in self._table:
                raise NoSuchProcessError(pid)
            return self._table[pid]

    def processes(self) -> list[Process]:
        with self._cond:
            return list(self._table.values())

    def memory_usage(self) -> MemoryUsage:
        return self.memory.usage()

    def status(self) -> KernelStatus:
        processes = self.processes()
        memory = self.memory.usage()
        info = self.engine.info
        return KernelStatus(
            model=info.model_name,
            policy=self.config.policy,
            uptime_s=round(time.monotonic() - self.stats.started_at, 3),
            generated_tokens=self.stats.generated_tokens,
            prompt_tokens=self.stats.prompt_tokens,
            steps=self.stats.steps,
            swap_outs=self.stats.swap_outs,
            swap_ins=self.stats.swap_ins,
            processes=dict(Counter(p.state.value for p in processes)),
            num_slots=memory.num_slots,
            num_used_slots=memory.num_used_slots,
            context_length=info.context_length,
            kv_tokens=sum(p.num_computed_tokens for p in processes if p.slot is not None),
        )

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
                self._cond.notify()

    @property
    def closed(self) -> bool:
        """True once close() was called; no new process is accepted."""
        return self._closing

    def close(self) -> None:
        """Kill every live process, stop the tick thread and free the engine."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self.engine.close()

    # -- the tick thread ------------------------------------------------------------------

    def _prompt_tokens(self, prompt: object) -> list[int]:
        if not isinstance(prompt, str):
            raise InvalidRequestError("prompt", f"must be a string, got {type(prompt).__name__}")
        if not prompt:
            raise InvalidRequestError("prompt", "must not be empty")
        return self.engine.tokenize(prompt)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and (
                    self._paused or not (self._commands or self._has_runnable())
                ):
                    self._cond.wait()
                if self._closing:
                    break
                commands, self._commands = self._commands, []
            try:
                for command in commands:
                    self._apply(command)
                if self._has_runnable():
                    self._tick()
            except Exception as fault:  # a kernel bug must not leave every waiter hanging
                logger.exception("kernel tick failed")
                self._recover(commands, fault)
        self._shutdown()

    def _recover(self, commands: list[Process | _SignalCommand], fault: Exception) -> None:
        """After an unexpected error: fail the processes that were running, answer signals."""
        for command in commands:
            if isinstance(command, _SignalCommand) and not command.done.is_set():
                command.error = fault
                command.done.set()
        for process in self._table.values():
            if process.state is ProcessState.RUNNING:
                self._finish(process, FinishReason.ERROR, error=f"internal error: {fault!r}")

    def _has_runnable(self) -> bool:
        return any(p.state in _RUNNABLE for p in self._table.values())

    def _apply(self, command: Process | _SignalCommand) -> None:
        if isinstance(command, Process):
            command.state = ProcessState.READY
            command.spawn_tick = self.tick_count
            return
        process = self._table[command.pid]
        if not process.alive:
            command.error = ProcessTerminatedError(process.pid, command.signal.value)
        elif command.signal is Signal.KILL:
            self._finish(process, FinishReason.KILLED)
        elif command.signal is Signal.SUSPEND:
            process.state = ProcessState.SUSPENDED
        elif command.signal is Signal.RESUME and process.state is ProcessState.SUSPENDED:
            process.state = ProcessState.SWAPPED if process.slot is None else ProcessState.READY
        command.done.set()

    def _tick(self) -> None:
        # There is no prefill phase and no decode phase: every process simply has tokens that
        # the KV cache does not hold yet (its prompt's rest, or the one token it sampled last).
        # A tick lets the chosen processes catch up by as many of those as the token budget
        # allows; whoever catches up completely samples its next token.
        self._compact_slots()
        runnable = [p for p in self._table.values() if p.state in _RUNNABLE]
        chosen = self.policy.select(runnable, self.config.max_running)
        for process in runnable:
            if process.state is ProcessState.RUNNING and process not in chosen:
                process.state = ProcessState.READY
                process.preemptions += 1
        chosen = [p for p in chosen if self._make_resident(p, protected=chosen)]
        batch = self._plan_batch(chosen)
        if not batch:
            return
        started = time.monotonic()
        try:
            sampled = self.engine.step([item for _, item in batch])
        except EngineError as error:
            logger.error("engine step failed: %s", error)
            for process, _ in batch:
                self._finish(process, FinishReason.ERROR, error=str(error))
            return
        duration = time.monotonic() - started
        generated = 0
        for (process, item), token in zip(batch, sampled, strict=True):
            process.state = ProcessState.RUNNING
            process.num_computed_tokens += len(item.tokens)
            process.run_s += duration
            if process.first_run_tick is None:
                process.first_run_tick = self.tick_count
            if token is None:
                self.stats.prompt_tokens += len(item.tokens)
                continue
            generated += 1
            self.policy.charge(process, 1)
            self._append_token(process, token)
        self.stats.generated_tokens += generated
        self.stats.steps += 1
        self.trace.append(
            TickRecord(
                tick=self.tick_count,
                duration_s=duration,
                batch=tuple((p.pid, len(item.tokens)) for p, item in batch),
                generated_tokens=generated,
            )
        )
        self.tick_count += 1

    def _make_resident(self, process: Process, protected: list[Process]) -> bool:
        """Give `process` a slot, swapping another process out if none is free."""
        if process.slot is not None:
            return True
        slot = self.memory.allocate()
        if slot is None:
            victim = self._pick_victim(protected)
            if victim is None:
                return False
            self._swap_out(victim)
            slot = self.memory.allocate()
            assert slot is not None
        process.slot = slot
        if process.swapped_state is not None:
            try:
                self.engine.restore(process.swapped_state, slot)
            except EngineError as error:
                self._finish(process, FinishReason.ERROR, error=str(error))
                return False
            process.swapped_state = None
            self.stats.swap_ins += 1
        else:
            process.num_computed_tokens = 0
        return True

    def _compact_slots(self) -> None:
        """Move resident processes down into free slots, so running ones stay consecutive."""
        while (hole := self.memory.hole()) is not None:
            highest, lowest = hole
            process = next(p for p in self._table.values() if p.slot == highest)
            state = self.engine.snapshot(highest)
            self._release_slot(process)
            process.slot = self.memory.allocate()
            assert process.slot == lowest
            self.engine.restore(state, lowest)
            self.stats.slot_moves += 1

    def _pick_victim(self, protected: list[Process]) -> Process | None:
        resident = [
            p for p in self._table.values() if p.slot is not None and p.alive and p not in protected
        ]
        if not resident:
            return None
        # Suspended processes go first, then the lowest priority, then the latest arrival.
        return min(
            resident,
            key=lambda p: (p.state is not ProcessState.SUSPENDED, p.priority, -p.arrival),
        )

    def _swap_out(self, process: Process) -> None:
        assert process.slot is not None
        process.swapped_state = self.engine.snapshot(process.slot)
        self._release_slot(process)
        self.stats.swap_outs += 1
        if process.state is not ProcessState.SUSPENDED:
            process.state = ProcessState.SWAPPED

    def _release_slot(self, process: Process) -> None:
        if process.slot is not None:
            self.engine.release(process.slot)
            self.memory.free(process.slot)
            process.slot = None

    def _plan_batch(self, chosen: list[Process]) -> list[tuple[Process, BatchItem]]:
        """Decode tokens first (one each), then prefill chunks while the token budget lasts."""
        budget = self.engine.info.max_batch_tokens
        batch: list[tuple[Process, BatchItem]] = []
        ordered = [p for p in chosen if not p.is_prefilling] + [
            p for p in chosen if p.is_prefilling
        ]
        for process in ordered:
            if budget == 0:
                break
            n = min(process.num_pending_tokens, budget)
            start = process.num_computed_tokens
            catches_up = n == process.num_pending_tokens
            assert process.slot is not None
            item = BatchItem(
                slot=process.slot,
                tokens=process.tokens[start : start + n],
                start_pos=start,
                sampler=process.sampler if catches_up else None,
            )
            batch.append((process, item))
            budget -= n
        return batch

    def _append_token(self, process: Process, token: int) -> None:
        if process.first_token_at is None:
            process.first_token_at = time.monotonic()
            self.stats.time_to_first_token_s.observe(process.first_token_at - process.spawned_at)
        end_of_generation = self.engine.is_end_of_generation(token)
        data = b"" if end_of_generation else self.engine.token_bytes(token)
        with process.lock:
            process.tokens.append(token)
            process.publish(TextPiece(process.output.feed(data), [token]))
        if process.output.stopped or end_of_generation:
            self._finish(process, FinishReason.STOP)
        elif process.num_output_tokens >= process.params.max_tokens:
            self._finish(process, FinishReason.LENGTH)

    def _finish(self, process: Process, reason: FinishReason, error: str | None = None) -> None:
        self._release_slot(process)
        process.swapped_state = None
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
            process.result = self._result(process)
            process.publish(process.result)
        process.done.set()
        self._reap(process)

    def _reap(self, process: Process) -> None:
        """Retire an ended process; forget the oldest ended ones beyond keep_finished."""
        with self._cond:
            self._live.discard(process.pid)
            self._finished.append(process.pid)
            while len(self._finished) > self.config.keep_finished:
                del self._table[self._finished.popleft()]

    @staticmethod
    def _result(process: Process) -> Result:
        assert process.finished_at is not None and process.finish_reason is not None
        total = process.finished_at - process.spawned_at
        ttft = (
            None if process.first_token_at is None else process.first_token_at - process.spawned_at
        )
        return Result(
            pid=process.pid,
            text=process.output.text,
            token_ids=process.tokens[len(process.prompt_tokens) :],
            finish_reason=process.finish_reason,
            usage=Usage(len(process.prompt_tokens), process.num_output_tokens),
            timings=Timings(
                waiting_s=max(0.0, total - process.run_s),
                time_to_first_token_s=ttft,
                run_s=process.run_s,
                total_s=total,
            ),
            preemptions=process.preemptions,
            error=process.error,
        )

    def _shutdown(self) -> None:
        with self._cond:
            commands, self._commands = self._commands, []
        for command in commands:
            if isinstance(command, _SignalCommand):
                command.error = KernelClosedError()
                command.done.set()
        for process in list(self._table.values()):
            if process.alive:
                self._finish(process, FinishReason.KILLED, error="kernel closed")
