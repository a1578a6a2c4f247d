"""The planner alone: for each policy, the exact step plan a process table and a ledger give."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from llmasos.kernel.output import OutputText
from llmasos.kernel.planner import Planner, StepPlan
from llmasos.kernel.prefix_cache import PrefixMatch
from llmasos.kernel.process import Process, ProcessState
from llmasos.kernel.scheduler import make_policy
from llmasos.sampling import SamplingParams


class NoSampler:
    def close(self) -> None:
        return None


_pids = itertools.count(1)


def proc(
    prompt_len: int = 4,
    *,
    state: ProcessState = ProcessState.READY,
    slot: int | None = None,
    computed: int = 0,
    output: int = 0,
    priority: int = 0,
    max_tokens: int = 10,
    prompt: Sequence[int] | None = None,
) -> Process:
    """A process whose prompt has `prompt_len` tokens (or `prompt`), with `output` tokens
    generated and `computed` tokens in its KV."""
    pid = next(_pids)
    tokens = list(prompt) if prompt is not None else [10_000 * pid + i for i in range(prompt_len)]
    process = Process(
        pid=pid,
        owner="t",
        model="m",
        priority=priority,
        params=SamplingParams(max_tokens=max_tokens),
        prompt_tokens=tokens,
        output=OutputText(()),
        sampler=NoSampler(),
        arrival=pid,
        spawned_at=0.0,
        state=state,
        slot=slot,
        num_computed_tokens=computed,
    )
    process.tokens.extend(range(7000, 7000 + output))
    return process


def running(prompt_len: int = 4, slot: int = 0, **kw) -> Process:
    """A resident process that generated one token and waits to feed it."""
    return proc(
        prompt_len, state=ProcessState.RUNNING, slot=slot, computed=prompt_len, output=1, **kw
    )


@dataclass
class Ledger:
    available: int = 0
    snapshots: set[int] = field(default_factory=set)
    prefixes: dict[tuple[int, ...], tuple[int, frozenset[int]]] = field(default_factory=dict)

    def num_available_slots(self) -> int:
        return self.available

    def has_snapshot(self, pid: int) -> bool:
        return pid in self.snapshots

    def reusable_prefix(self, tokens: Sequence[int]) -> PrefixMatch:
        matches = [
            (n, slots)
            for start, (n, slots) in self.prefixes.items()
            if tuple(tokens[: len(start)]) == start
        ]
        n, slots = max(matches, default=(0, frozenset()))
        return PrefixMatch(n, frozenset(slots))


def planner(policy: str = "fcfs", *, max_running: int = 4, budget: int = 64, quantum: int = 2):
    return Planner(
        make_policy(policy, quantum=quantum),
        max_running=max_running,
        max_batch_tokens=budget,
        min_prefix_tokens=4,
    )


def runs(plan: StepPlan) -> list[tuple[int, int]]:
    return [(run.process.pid, run.num_tokens) for run in plan.runs]


def pids(processes) -> list[int]:
    return [p.pid for p in processes]


def test_fcfs_starts_the_earliest_arrivals_that_fit_and_feeds_decodes_first():
    old = running(slot=0)
    a, b, c = proc(6), proc(5), proc(3)
    plan = planner(max_running=3).plan([old, a, b, c], Ledger(available=3))
    assert pids(plan.start) == [a.pid, b.pid]  # capacity 3: the running one and two more
    assert runs(plan) == [(old.pid, 1), (a.pid, 6), (b.pid, 5)]
    assert (plan.swap_out, plan.swap_in, plan.preempted) == ((), (), ())


def test_the_token_budget_chunks_prompts_after_the_decodes():
    old = running(slot=0)
    long_prompt = proc(100)
    plan = planner(budget=16).plan([old, long_prompt], Ledger(available=3))
    assert runs(plan) == [(old.pid, 1), (long_prompt.pid, 15)]
    assert plan.num_tokens == plan.token_budget == 16


def test_sjf_picks_the_shortest_waiting_job_but_never_preempts():
    busy = running(slot=0, max_tokens=100)
    short, long = proc(max_tokens=5), proc(max_tokens=50)
    plan = planner("sjf", max_running=2).plan([busy, long, short], Ledger(available=1))
    assert pids(plan.start) == [short.pid]
    assert runs(plan) == [(busy.pid, 1), (short.pid, 4)]


def test_priority_preempts_the_lowest_latest_runner_and_swaps_it_out():
    low_old = running(slot=0, priority=0)
    low_new = running(slot=1, priority=0)
    urgent = proc(4, priority=5)
    plan = planner("priority", max_running=2).plan([low_old, low_new, urgent], Ledger())
    assert pids(plan.preempted) == [low_new.pid]
    assert pids(plan.swap_out) == [low_new.pid]
    assert pids(plan.start) == [urgent.pid]
    assert runs(plan) == [(urgent.pid, 4)]  # its prompt's step runs it alone
    assert pids(plan.held) == [low_old.pid]


def test_a_suspended_resident_gives_up_its_slot_before_a_lower_priority_one():
    runner = running(slot=0, priority=1)
    low = proc(4, state=ProcessState.READY, slot=1, computed=4, output=1, priority=-5)
    sleeper = proc(4, state=ProcessState.SUSPENDED, slot=2, computed=4, output=1, priority=9)
    urgent = proc(4, priority=5)
    plan = planner("priority", max_running=2).plan([runner, low, sleeper, urgent], Ledger())
    assert pids(plan.swap_out) == [sleeper.pid]
    assert runs(plan) == [(urgent.pid, 4)]


def test_rr_rotates_through_swap_after_the_quantum():
    rr = planner("rr", max_running=1, quantum=2)
    first = running(slot=0)
    second = proc(3, state=ProcessState.SWAPPED, computed=3, output=1)
    ledger = Ledger(snapshots={second.pid})
    assert runs(rr.plan([first, second], ledger)) == [(first.pid, 1)]
    rr.policy.charge(first, 2)
    plan = rr.plan([first, second], ledger)
    assert pids(plan.preempted) == pids(plan.swap_out) == [first.pid]
    assert pids(plan.swap_in) == [second.pid]
    assert runs(plan) == [(second.pid, 1)]


def test_a_chosen_process_without_a_slot_or_a_victim_waits():
    holder = running(slot=0, priority=5)
    waiting = proc(4)
    plan = planner("priority", max_running=2).plan([holder, waiting], Ledger(available=0))
    assert plan.start == () and runs(plan) == [(holder.pid, 1)]


def test_a_cached_prompt_start_is_not_planned_for_recomputation():
    prompt = list(range(1, 21))
    newcomer = proc(prompt=prompt)
    cached = {tuple(prompt[:12]): (12, frozenset({3}))}
    plan = planner().plan([newcomer], Ledger(available=1, prefixes=cached))
    assert runs(plan) == [(newcomer.pid, 8)]


def test_newcomers_sharing_a_prompt_start_wait_for_the_first_to_compute_it():
    system = list(range(500, 530))
    first, second = proc(prompt=[*system, 1, 2]), proc(prompt=[*system, 3])
    unrelated = proc(5)
    plan = planner().plan([first, second, unrelated], Ledger(available=4))
    assert pids(plan.deferred) == [second.pid]
    assert pids(plan.start) == [first.pid, unrelated.pid]
    assert runs(plan) == [(first.pid, 32), (unrelated.pid, 5)]


@pytest.mark.parametrize(
    "state", [ProcessState.NEW, ProcessState.SUSPENDED, ProcessState.TERMINATED]
)
def test_processes_that_cannot_run_are_never_planned(state):
    plan = planner().plan([proc(state=state)], Ledger(available=4))
    assert plan == StepPlan(token_budget=64)


def test_a_resident_holding_a_newcomers_prompt_start_is_swapped_out_last():
    system = list(range(900, 940))
    holder = proc(prompt=[*system, 1], state=ProcessState.READY, slot=0, computed=41, output=1)
    other = proc(4, state=ProcessState.READY, slot=1, computed=4, output=1, priority=5)
    newcomer = proc(prompt=[*system, 2], priority=9)
    ledger = Ledger(prefixes={tuple(system): (40, frozenset({0}))})
    plan = planner("priority", max_running=1).plan([holder, other, newcomer], ledger)
    assert pids(plan.swap_out) == [other.pid]  # not the holder, though its priority is lower
    assert runs(plan) == [(newcomer.pid, 1)]


def test_an_urgent_prompt_runs_alone_then_everyone_runs_together():
    low = [running(slot=i) for i in range(3)]
    urgent = proc(6, priority=5)
    planner_ = planner("priority", max_running=4)
    first = planner_.plan([*low, urgent], Ledger(available=1))
    assert runs(first) == [(urgent.pid, 6)] and pids(first.held) == pids(low)
    assert first.preempted == ()  # sitting out one step is not a preemption
    urgent.slot, urgent.num_computed_tokens, urgent.state = 3, 6, ProcessState.RUNNING
    urgent.tokens.append(7000)  # it sampled its first token
    second = planner_.plan([*low, urgent], Ledger())
    assert sorted(runs(second)) == sorted([(p.pid, 1) for p in [*low, urgent]])
    assert second.held == ()


def test_equals_of_the_urgent_run_with_it_and_other_policies_never_isolate():
    urgent_a, urgent_b = proc(4, priority=5), proc(4, priority=5)
    low = running(slot=0)
    plan = planner("priority", max_running=3).plan([low, urgent_a, urgent_b], Ledger(available=2))
    assert runs(plan) == [(urgent_a.pid, 4), (urgent_b.pid, 4)]
    fcfs = planner("fcfs", max_running=3).plan([low, proc(4, priority=5)], Ledger(available=2))
    assert len(fcfs.runs) == 2 and fcfs.held == ()


def test_fair_runs_an_interactive_prompt_without_the_background_and_ignores_high_priority():
    batch = [running(slot=i) for i in range(3)]
    for p in batch:
        p.priority = -100
    interactive = proc(6, priority=0)
    planner_ = planner("fair", max_running=4)
    first = planner_.plan([*batch, interactive], Ledger(available=1))
    assert runs(first) == [(interactive.pid, 6)] and pids(first.held) == pids(batch)
    interactive.slot, interactive.num_computed_tokens = 3, 6
    interactive.state = ProcessState.RUNNING
    interactive.tokens.append(7000)
    assert len(planner_.plan([*batch, interactive], Ledger()).runs) == 4  # decode together
    others = [running(slot=i) for i in range(2)]
    loud = proc(6, priority=1000)  # a high priority isolates nothing across the foreground
    plan = planner("fair", max_running=3).plan([*others, loud], Ledger(available=1))
    assert len(plan.runs) == 3 and plan.held == ()
