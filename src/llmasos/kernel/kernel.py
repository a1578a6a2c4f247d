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
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
from llmasos.kernel.pager import Pager
from llmasos.kernel.prefix_cache import RadixPrefixCache, shared_prefix_length
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
from llmasos.kernel.quota import Admission
from llmasos.kernel.scheduler import make_policy
from llmasos.kernel.stats import KernelStats, KernelStatus, MemoryReport
from llmasos.kernel.swap import SwapSpace
from llmasos.models.default import canonical_model_name
from llmasos.sampling import SamplingParams

logger = logging.getLogger(__name__)

MAX_PRIORITY = 1000
STALL_WAIT_S = 0.05
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
        self.config = config or KernelConfig()
        self.config.check_against(engine.info)
        self.policy = make_policy(self.config.policy, quantum=self.config.quantum)
        config = self.config
        self.memory = MemoryManager(
            engine.info.num_slots, engine.info.context_length, config.page_size
        )
        swap_directory = config.swap_directory or Path(tempfile.gettempdir()) / "llmasos-swap"
        self.pager = Pager(
            engine,
            self.memory,
            RadixPrefixCache(),
            SwapSpace(config.swap_bytes, swap_directory),
            min_prefix_tokens=config.min_prefix_tokens,
        )
        self.admission = Admission(
            config.page_size, config.max_pages_per_process, config.max_pages_per_owner
        )
        self.tick_count = 0
        self.trace: deque[TickRecord] = deque(maxlen=self.config.trace_length)
        self.stats = KernelStats()
        self._table: dict[int, Process] = {}
        self._live: set[int] = set()
        self._finished: deque[int] = deque()
        self._unadmitted: list[Process] = []  # waiting for their owner's quota
        self._pids = pids if pids is not None else itertools.count(1)
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
        served = canonical_model_name(self.engine.info.model_name)
        if model is not None and canonical_model_name(model) != served:
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
        self.admission.check(owner, self.admission.pages_for(len(tokens) + params.max_tokens))
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

    def has(self, pid: int) -> bool:
        with self._cond:
            return pid in self._table

    @property
    def num_live_processes(self) -> int:
        """Processes spawned and not yet ended."""
        with self._cond:
            return len(self._live)

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
            swap_outs=self.pager.stats.swap_outs,
            swap_ins=self.pager.stats.swap_ins,
            processes=dict(Counter(p.state.value for p in processes)),
            num_slots=memory.num_slots,
            num_used_slots=memory.owned_slots,
            context_length=info.context_length,
            kv_tokens=sum(p.num_computed_tokens for p in processes if p.slot is not None),
        )

    def memory_report(self) -> MemoryReport:
        """Pages, slots, prefix-cache hits and swap use, with each live process's share."""
        live = [p for p in self.processes() if p.alive]
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
        self.pager.close()
        self.engine.close()

    # -- the tick thread ------------------------------------------------------------------

    def _prompt_tokens(self, prompt: object) -> list[int]:
        if not isinstance(prompt, str):
            raise InvalidRequestError("prompt", f"must be a string, got {type(prompt).__name__}")
        if not prompt:
            raise InvalidRequestError("prompt", "must not be empty")
        return self.engine.tokenize(prompt)

    def _run(self) -> None:
        stalled = False
        while True:
            with self._cond:
                if stalled:  # nothing could run: wait for a signal or a spawn, not spin
                    self._cond.wait(STALL_WAIT_S)
                while not self._closing and (
                    self._paused or not (self._commands or self._has_runnable())
                ):
                    self._cond.wait()
                if self._closing:
                    break
                commands, self._commands = self._commands, []
            stalled = False
            try:
                for command in commands:
                    self._apply(command)
                if self._has_runnable():
                    stalled = not self._tick()
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
            command.spawn_tick = self.tick_count
            self._unadmitted.append(command)
            self._admit_waiting()
            return
        process = self._table[command.pid]
        if not process.alive:
            command.error = ProcessTerminatedError(process.pid, command.signal.value)
        elif command.signal is Signal.KILL:
            self._finish(process, FinishReason.KILLED)
        elif command.signal is Signal.SUSPEND:
            process.state = ProcessState.SUSPENDED
        elif command.signal is Signal.RESUME and process.state is ProcessState.SUSPENDED:
            process.state = self._waiting_state(process)
        command.done.set()

    def _waiting_state(self, process: Process) -> ProcessState:
        if not self.admission.is_admitted(process.pid):
            return ProcessState.NEW
        return ProcessState.SWAPPED if process.slot is None else ProcessState.READY

    def _admit_waiting(self) -> None:
        """Admit, in arrival order, the waiting processes whose owner's quota now allows."""
        for process in list(self._unadmitted):
            if process.state is ProcessState.SUSPENDED:
                continue
            pages = self.admission.pages_for(process.reserved_tokens)
            if self.admission.try_admit(process.pid, process.owner, pages):
                self._unadmitted.remove(process)
                process.state = ProcessState.READY

    def _tick(self) -> bool:
        # There is no prefill phase and no decode phase: every process simply has tokens that
        # the KV cache does not hold yet (its prompt's rest, or the one token it sampled last).
        # A tick lets the chosen processes catch up by as many of those as the token budget
        # allows; whoever catches up completely samples its next token.
        self.pager.compact(self._owner_of)
        runnable = [p for p in self._table.values() if p.state in _RUNNABLE]
        chosen = self.policy.select(runnable, self.config.max_running)
        for process in runnable:
            if process.state is ProcessState.RUNNING and process not in chosen:
                process.state = ProcessState.READY
                process.preemptions += 1
        chosen = self._residents_for_this_tick(chosen)
        batch = self._plan_batch(chosen)
        if not batch:
            logger.warning("tick %d: no process could be made resident", self.tick_count)
            return False
        started = time.monotonic()
        try:
            sampled = self.engine.step([item for _, item in batch])
        except EngineError as error:
            logger.error("engine step failed: %s", error)
            for process, _ in batch:
                self._finish(process, FinishReason.ERROR, error=str(error))
            return True
        duration = time.monotonic() - started
        generated = 0
        for (process, item), token in zip(batch, sampled, strict=True):
            process.state = ProcessState.RUNNING
            process.num_computed_tokens += len(item.tokens)
            self.pager.computed(process, item.tokens)
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
        return True

    def _residents_for_this_tick(self, chosen: list[Process]) -> list[Process]:
        """The chosen processes that get a slot now. A newcomer whose prompt starts like that of
        a process computing its prompt in this tick waits for it, then copies that prefix:
        agents that share a long system prompt compute it once, not once each."""
        running: list[Process] = []
        for process in chosen:
            if self._waits_for_shared_prefix(process, running):
                continue
            if self._make_resident(process, chosen):
                running.append(process)
        return running

    def _waits_for_shared_prefix(self, process: Process, running: list[Process]) -> bool:
        first_residency = (
            process.slot is None
            and process.num_computed_tokens == 0
            and self.pager.swap.location(process.pid) is None
        )
        if not first_residency:
            return False
        prompt = process.prompt_tokens[:-1]
        cached = self.pager.prefix_cache.match_prefix(prompt).length
        for other in running:
            if not other.is_prefilling:
                continue
            shared = shared_prefix_length(prompt, other.prompt_tokens)
            if shared >= max(self.config.min_prefix_tokens, cached + 1) and (
                other.num_computed_tokens < shared
            ):
                return True
        return False

    def _make_resident(self, process: Process, chosen: list[Process]) -> bool:
        """Give a chosen process a slot; may swap out one that was not chosen."""

        def victim(keep_slots: frozenset[int]) -> Process | None:
            candidates = [
                p
                for p in self._table.values()
                if p.slot is not None and p.alive and p not in chosen and p.slot not in keep_slots
            ]
            # Suspended processes go first, then the lowest priority, then the latest arrival.
            chosen_victim = min(
                candidates,
                key=lambda p: (p.state is not ProcessState.SUSPENDED, p.priority, -p.arrival),
                default=None,
            )
            if chosen_victim is not None and chosen_victim.state is not ProcessState.SUSPENDED:
                chosen_victim.state = ProcessState.SWAPPED
            return chosen_victim

        try:
            return self.pager.make_resident(process, victim)
        except EngineError as error:
            self._finish(process, FinishReason.ERROR, error=str(error))
            return False

    def _owner_of(self, slot: int) -> Process:
        pid = self.memory.owner(slot)
        assert pid is not None
        return self._table[pid]

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
        # A completed process's KV stays as prefix cache; a killed or failed one's is freed.
        completed = reason in (FinishReason.STOP, FinishReason.LENGTH)
        self.pager.release(process, keep_as_cache=completed)
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
        if process in self._unadmitted:
            self._unadmitted.remove(process)
        self.admission.release(process.pid)
        self._admit_waiting()

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
            usage=Usage(
                len(process.prompt_tokens), process.num_output_tokens, process.cached_prompt_tokens
            ),
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
