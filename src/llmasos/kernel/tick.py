"""One tick, on the kernel's tick thread: apply a step plan, run its batch as one engine step,
then account what the step computed and sampled.

Applying a plan: preempted processes go back to READY, victims are swapped out, newcomers and
returning processes are made resident (a failure there ends only that process), then each
planned run becomes a batch item of at most its planned tokens. A process that catches up
completely in the step samples its next token; forks waiting for its first token draw theirs
from the same logits.

Under a policy with a background floor (fair), a step that runs background work only can be cut
short when an interactive process arrives (kernel/step_cuts.py): the engine undoes it, nothing is
accounted, and the next plan computes the newcomer's prompt first. The background redoes the
step afterwards, with the same result.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from llmasos.engine.base import BatchItem, Engine, StepInterrupted
from llmasos.errors import EngineError, SwapError
from llmasos.kernel.lifecycle import Lifecycle
from llmasos.kernel.pager import Pager
from llmasos.kernel.planner import StepPlan
from llmasos.kernel.process import FinishReason, Process, ProcessState
from llmasos.kernel.scheduler import Policy
from llmasos.kernel.stats import KernelStats, TickRecord
from llmasos.kernel.step_cuts import BackgroundCuts

logger = logging.getLogger(__name__)

Batch = list[tuple[Process, BatchItem]]


class StepRunner:
    def __init__(
        self,
        engine: Engine,
        pager: Pager,
        policy: Policy,
        lifecycle: Lifecycle,
        stats: KernelStats,
        *,
        trace_length: int,
    ) -> None:
        self.engine = engine
        self.pager = pager
        self.policy = policy
        self.lifecycle = lifecycle
        self.stats = stats
        self.tick_count = 0
        self.trace: deque[TickRecord] = deque(maxlen=trace_length)
        self.cuts = BackgroundCuts(engine, policy.background_below)

    def run(self, plan: StepPlan) -> bool:
        """Apply `plan` and run its batch; False when nothing could run."""
        batch = self._apply(plan)
        if not batch:
            logger.warning("tick %d: no process could be made resident", self.tick_count)
            return False
        started = time.monotonic()
        processes = [process for process, _ in batch]
        self.cuts.step_starts(processes)
        cut = False
        try:
            sampled = self.engine.step([item for _, item in batch])
        except StepInterrupted:  # nothing computed: the next plan runs the newcomer first
            cut = True
            self.stats.interrupted_steps += 1
            for process in plan.swap_in:  # back in a slot, waiting like the others
                if process.state is ProcessState.SWAPPED and process.slot is not None:
                    process.state = ProcessState.READY
            return True
        except EngineError as error:
            logger.error("engine step failed: %s", error)
            for process in processes:
                self.lifecycle.finish(process, FinishReason.ERROR, error=str(error))
            return True
        finally:
            self.cuts.step_ends(processes, cut)
        self._account(batch, sampled, time.monotonic() - started)
        return True

    def _apply(self, plan: StepPlan) -> Batch:
        """Carry out the plan's state changes and residency; the batch items it can run."""
        for process in plan.preempted:
            process.state = ProcessState.READY
            process.preemptions += 1
        for process in plan.held:
            process.state = ProcessState.READY
        for victim in plan.swap_out:
            if victim.state is not ProcessState.SUSPENDED:
                victim.state = ProcessState.SWAPPED
            self._guarded(victim, self.pager.swap_out)
        for process in (*plan.start, *plan.swap_in):
            self._guarded(process, self.pager.make_resident)
        batch = []
        for run in plan.runs:
            process = run.process
            if process.slot is None or not process.alive:
                continue  # its residency failed
            start = process.num_computed_tokens
            n = min(run.num_tokens, process.num_pending_tokens)
            item = BatchItem(
                slot=process.slot,
                tokens=process.tokens[start : start + n],
                start_pos=start,
                sampler=process.sampler if n == process.num_pending_tokens else None,
            )
            batch.append((process, item))
        return batch

    def _guarded(self, process: Process, move: Callable[[Process], None]) -> None:
        """Run a memory move for `process`; if the engine or swap fails, the process ends with
        the error (the others go on)."""
        try:
            move(process)
        except (EngineError, SwapError) as error:
            logger.error("pid %d: %s", process.pid, error)
            self.lifecycle.finish(process, FinishReason.ERROR, error=str(error))

    def _account(self, batch: Batch, sampled: list[int | None], duration: float) -> None:
        generated = 0
        for index, ((process, item), token) in enumerate(zip(batch, sampled, strict=True)):
            start = process.num_computed_tokens
            prompt_part = max(0, min(len(process.prompt_tokens), start + len(item.tokens)) - start)
            self.stats.prompt_tokens += prompt_part
            owners = self.stats.owner_prompt_tokens
            owners[process.owner] = owners.get(process.owner, 0) + prompt_part
            process.state = ProcessState.RUNNING
            process.num_computed_tokens += len(item.tokens)
            self.pager.computed(process, item.tokens)
            process.run_s += duration
            if process.first_run_tick is None:
                process.first_run_tick = self.tick_count
                self.stats.queue_wait_s.observe(time.monotonic() - process.spawned_at)
            if token is None:
                continue
            generated += 1
            self.policy.charge(process, 1)
            if process.forks:
                generated += self.lifecycle.first_tokens_of_forks(process, index)
            self.lifecycle.emit(process, token)
        self.stats.generated_tokens += generated
        self.stats.steps += 1
        pieces = tuple((p.pid, len(item.tokens)) for p, item in batch)
        self.trace.append(TickRecord(self.tick_count, duration, pieces, generated))
        self.tick_count += 1
