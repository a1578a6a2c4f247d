"""The planner: one tick's step plan, decided from the process table and the memory ledger.

It never calls the engine and changes nothing: it reads processes and asks the ledger a few
questions (how many slots can be had, does a process have a snapshot in swap, how much of a
prompt's start is already cached), and returns a StepPlan. The kernel applies the plan
(state changes, swap out, swap in, first residency) and the engine runs its batch.

There is no prefill phase and no decode phase. Every process simply has tokens that the KV
cache does not hold yet: its prompt's rest, or the one token it sampled last. A tick lets the
chosen processes catch up by as many of those as the token budget allows, decode tokens first
(one each), then prompt chunks; whoever catches up completely samples its next token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from llmasos.kernel.prefix_cache import PrefixMatch, shared_prefix_length
from llmasos.kernel.process import Process, ProcessState
from llmasos.kernel.scheduler import Policy

RUNNABLE_STATES = (ProcessState.RUNNING, ProcessState.READY, ProcessState.SWAPPED)


class MemoryLedger(Protocol):
    """What the planner may ask of memory (the pager answers in the kernel)."""

    def num_available_slots(self) -> int:
        """Slots a process could have without swapping anyone out (free or only cached)."""
        ...

    def has_snapshot(self, pid: int) -> bool:
        """True when the process's KV waits in swap."""
        ...

    def reusable_prefix(self, tokens: Sequence[int]) -> PrefixMatch:
        """The start of a new prompt `tokens` that a first residency takes from the prefix
        cache instead of computing, and the slots holding it (empty when too short to be
        worth it)."""
        ...


@dataclass(frozen=True)
class PlannedRun:
    """A process's share of the step: up to `num_tokens` of its pending tokens."""

    process: Process
    num_tokens: int


@dataclass(frozen=True)
class StepPlan:
    """What one tick does, in the order the kernel applies it."""

    preempted: tuple[Process, ...] = ()  # were running, not chosen now: back to READY
    swap_out: tuple[Process, ...] = ()  # resident, not chosen: their slots are needed
    start: tuple[Process, ...] = ()  # first residency (the prefix cache is consulted)
    swap_in: tuple[Process, ...] = ()  # their snapshot comes back from swap
    deferred: tuple[Process, ...] = ()  # wait for a shared prompt start computed this tick
    held: tuple[Process, ...] = ()  # resident, sitting out this step for an urgent prompt
    runs: tuple[PlannedRun, ...] = ()  # the batch, decode tokens first
    token_budget: int = 0
    involved: frozenset[int] = field(default=frozenset())  # pids touched by this plan

    @property
    def num_tokens(self) -> int:
        return sum(run.num_tokens for run in self.runs)


def victim_order(process: Process) -> tuple[bool, int, int]:
    """Who gives up a slot first: suspended processes, then the lowest priority, then the
    latest arrival."""
    return (process.state is not ProcessState.SUSPENDED, process.priority, -process.arrival)


def _victims(
    processes: Sequence[Process], picked: set[int], newcomers: list[Process], ledger: MemoryLedger
) -> list[Process]:
    """Residents the policy did not pick, in victim order, except that those holding the
    cached prompt start of a newcomer go last (their KV is about to be shared)."""
    holders: set[int] = set()
    for process in newcomers:
        holders |= ledger.reusable_prefix(process.tokens).slots
    residents = [p for p in processes if p.slot is not None and p.alive and p.pid not in picked]
    return sorted(residents, key=lambda p: (p.slot in holders, *victim_order(p)))


@dataclass
class _Draft:
    """A plan being drawn: who will be resident (and hold how many tokens), and the moves."""

    residents: list[Process] = field(default_factory=list)
    computed: dict[int, int] = field(default_factory=dict)  # pid -> tokens its KV will hold
    swap_out: list[Process] = field(default_factory=list)
    start: list[Process] = field(default_factory=list)
    swap_in: list[Process] = field(default_factory=list)
    deferred: list[Process] = field(default_factory=list)

    def add(self, process: Process, computed: int) -> None:
        self.residents.append(process)
        self.computed[process.pid] = computed


def _isolate_urgent(draft: _Draft) -> list[Process]:
    """When a step would compute the prompt of a process that outranks others in it, only the
    highest-priority processes run it: the urgent prompt's step is no longer than it would be
    alone. The others sit out this one step (they stay resident); they are returned."""
    prompting = [p for p in draft.residents if draft.computed[p.pid] < len(p.prompt_tokens)]
    if not prompting:
        return []
    top = max(p.priority for p in prompting)
    held = [p for p in draft.residents if p.priority < top]
    draft.residents = [p for p in draft.residents if p.priority >= top]
    return held


def _isolate_background(draft: _Draft, floor: int) -> list[Process]:
    """When a step would compute the prompt of a process of priority `floor` or more, the
    processes below `floor` (background work) sit out this one step; they are returned."""
    prompting = [p for p in draft.residents if draft.computed[p.pid] < len(p.prompt_tokens)]
    if not any(p.priority >= floor for p in prompting):
        return []
    held = [p for p in draft.residents if p.priority < floor]
    draft.residents = [p for p in draft.residents if p.priority >= floor]
    return held


class Planner:
    """Turns a policy's choice into a step plan within the slot and token budgets."""

    def __init__(
        self, policy: Policy, *, max_running: int, max_batch_tokens: int, min_prefix_tokens: int
    ) -> None:
        self.policy = policy
        self.max_running = max_running
        self.max_batch_tokens = max_batch_tokens
        self.min_prefix_tokens = min_prefix_tokens

    def plan(self, processes: Sequence[Process], ledger: MemoryLedger) -> StepPlan:
        runnable = [p for p in processes if p.state in RUNNABLE_STATES]
        chosen = self.policy.select(runnable, self.max_running)
        picked = {p.pid for p in chosen}
        preempted = [p for p in runnable if p.state is ProcessState.RUNNING and p.pid not in picked]
        newcomers = [p for p in chosen if p.slot is None and not ledger.has_snapshot(p.pid)]
        draft = _Draft()
        self._make_resident(chosen, _victims(processes, picked, newcomers, ledger), ledger, draft)
        held = _isolate_urgent(draft) if self.policy.isolates_urgent else []
        if self.policy.background_below is not None:
            held = _isolate_background(draft, self.policy.background_below)
        runs = self._fill(draft.residents, draft.computed)
        touched = [*preempted, *draft.swap_out, *draft.start, *draft.swap_in, *held]
        return StepPlan(
            preempted=tuple(preempted),
            swap_out=tuple(draft.swap_out),
            start=tuple(draft.start),
            swap_in=tuple(draft.swap_in),
            deferred=tuple(draft.deferred),
            held=tuple(held),
            runs=tuple(runs),
            token_budget=self.max_batch_tokens,
            involved=frozenset(p.pid for p in [*touched, *(r.process for r in runs)]),
        )

    def _make_resident(
        self, chosen: list[Process], victims: list[Process], ledger: MemoryLedger, draft: _Draft
    ) -> None:
        """Give each chosen process a slot (free, cached, or a victim's), in the policy's order,
        unless it waits for a shared prompt start."""
        available = ledger.num_available_slots()
        for process in chosen:
            if process.slot is not None:
                draft.add(process, process.num_computed_tokens)
                continue
            first = not ledger.has_snapshot(process.pid)
            if first and self._waits_for_shared_prefix(process, draft, ledger):
                draft.deferred.append(process)
                continue
            if available:
                available -= 1
            elif victims:
                draft.swap_out.append(victims.pop(0))
            else:
                continue  # no slot this tick; it keeps waiting
            if first:
                draft.start.append(process)
                draft.add(process, ledger.reusable_prefix(process.tokens).length)
            else:
                draft.swap_in.append(process)
                draft.add(process, process.num_computed_tokens)

    def _waits_for_shared_prefix(
        self, process: Process, draft: _Draft, ledger: MemoryLedger
    ) -> bool:
        """A newcomer whose prompt starts like that of a process computing its prompt in this
        tick waits for it, then copies that prefix: agents that share a long system prompt
        compute it once, not once each."""
        prompt = process.tokens[:-1]
        cached = ledger.reusable_prefix(process.tokens).length
        for other in draft.residents:
            other_computed = draft.computed[other.pid]
            if other_computed >= len(other.prompt_tokens):
                continue  # not computing its prompt
            shared = shared_prefix_length(prompt, other.prompt_tokens)
            if shared >= max(self.min_prefix_tokens, cached + 1) and other_computed < shared:
                return True
        return False

    def _fill(self, residents: list[Process], computed: dict[int, int]) -> list[PlannedRun]:
        """Decode tokens first (one each), then prompt chunks while the token budget lasts."""

        def prefilling(process: Process) -> bool:
            return computed[process.pid] < len(process.prompt_tokens)

        ordered = [p for p in residents if not prefilling(p)] + [
            p for p in residents if prefilling(p)
        ]
        budget = self.max_batch_tokens
        runs: list[PlannedRun] = []
        for process in ordered:
            if budget == 0:
                break
            n = min(len(process.tokens) - computed[process.pid], budget)
            runs.append(PlannedRun(process, n))
            budget -= n
        return runs
