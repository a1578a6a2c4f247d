"""Policies in isolation: which processes they choose, in what order."""

from collections import Counter
from dataclasses import dataclass, field

import pytest

from llmasos.errors import InvalidRequestError
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.process import ProcessState
from llmasos.kernel.scheduler import FairShare, make_policy
from llmasos.sampling import SamplingParams


@dataclass(eq=False)
class P:
    pid: int
    arrival: int
    priority: int = 0
    max_tokens: int = 10
    state: ProcessState = ProcessState.READY
    owner: str = "local"
    params: SamplingParams = field(init=False)

    def __post_init__(self):
        self.params = SamplingParams(max_tokens=self.max_tokens)


def pids(processes):
    return [p.pid for p in processes]


def test_fcfs_keeps_running_ones_and_fills_by_arrival():
    a, b, c = P(1, 0), P(2, 1), P(3, 2)
    c.state = ProcessState.RUNNING
    assert pids(make_policy("fcfs").select([a, b, c], 2)) == [3, 1]


def test_sjf_orders_waiting_ones_by_max_tokens_and_never_preempts():
    running = P(1, 0, max_tokens=100, state=ProcessState.RUNNING)
    short, middle = P(2, 1, max_tokens=5), P(3, 2, max_tokens=50)
    assert pids(make_policy("sjf").select([middle, running, short], 2)) == [1, 2]
    assert pids(make_policy("sjf").select([middle, short], 2)) == [2, 3]


def test_priority_preempts_the_lowest_and_breaks_ties_by_arrival():
    low_old = P(1, 0, priority=0, state=ProcessState.RUNNING)
    low_new = P(2, 1, priority=0, state=ProcessState.RUNNING)
    high = P(3, 2, priority=5)
    assert pids(make_policy("priority").select([low_old, low_new, high], 2)) == [3, 1]


def test_priority_keeps_a_running_process_against_an_equal_newcomer():
    running = P(2, 1, priority=1, state=ProcessState.RUNNING)
    older_waiting = P(1, 0, priority=1)
    assert pids(make_policy("priority").select([older_waiting, running], 1)) == [2]


def test_rr_rotates_after_the_quantum_only_when_someone_waits():
    rr = make_policy("rr", quantum=2)
    a, b = P(1, 0), P(2, 1)
    assert pids(rr.select([a, b], 1)) == [1]
    rr.charge(a, 1)
    assert pids(rr.select([a, b], 1)) == [1]
    rr.charge(a, 1)
    assert pids(rr.select([a, b], 1)) == [2]
    rr.charge(b, 2)
    assert pids(rr.select([a, b], 1)) == [1]
    rr.charge(a, 2)
    rr.forget(b)
    assert pids(rr.select([a], 1)) == [1]  # alone: the quantum resets, no rotation needed


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(InvalidRequestError, match="fcfs") as info:
        make_policy("lottery")
    assert info.value.field == "policy"


def flood(owner: str, count: int, first_pid: int, first_arrival: int, **fields) -> list[P]:
    return [P(first_pid + i, first_arrival + i, owner=owner, **fields) for i in range(count)]


def simulate(policy, processes: list[P], capacity: int, ticks: int) -> Counter:
    """Run `ticks` steps as the kernel would: the chosen run and each generates one token; a
    process leaves after max_tokens. Returns the slots each owner got."""
    live, generated, slots = list(processes), Counter(), Counter()
    for _ in range(ticks):
        chosen = policy.select(live, capacity)
        for p in live:
            p.state = ProcessState.RUNNING if p in chosen else ProcessState.READY
        for p in chosen:
            slots[p.owner] += 1
            generated[p.pid] += 1
            policy.charge(p, 1)
            if generated[p.pid] == p.max_tokens:
                live.remove(p)
                policy.forget(p)
    return slots


def test_fair_is_known_to_the_config_and_checks_its_idle_ticks():
    assert isinstance(make_policy("fair"), FairShare)
    assert KernelConfig(policy="fair").policy == "fair"
    with pytest.raises(InvalidRequestError, match="idle_ticks"):
        FairShare(idle_ticks=0)


def test_fair_gives_a_light_owner_a_slot_beside_a_waiting_flood():
    heavy, light = flood("a", 10, 1, 0), P(11, 10, owner="b")
    assert pids(make_policy("fair").select([*heavy, light], 2)) == [1, 11]


def test_fair_preempts_the_latest_running_process_of_an_owner_two_ahead():
    heavy, light = flood("a", 10, 1, 0), P(11, 10, owner="b")
    for p in heavy[:2]:
        p.state = ProcessState.RUNNING
    assert pids(make_policy("fair").select([*heavy, light], 2)) == [1, 11]


def test_fair_does_not_preempt_when_running_counts_differ_by_one():
    policy = make_policy("fair")
    a, b = P(1, 0, owner="a", state=ProcessState.RUNNING), P(2, 1, owner="b")
    for _ in range(5):  # a gets charged, b stays at 0: b still waits for a's slot
        assert pids(policy.select([a, b], 1)) == [1]
        policy.charge(a, 1)
    a2 = P(3, 2, owner="a", state=ProcessState.RUNNING)
    b.state = ProcessState.RUNNING
    # two each and three slots: b, the less charged, goes first in each round, but a's
    # running second process keeps its place against b's waiting one
    assert pids(policy.select([a, a2, b, P(4, 3, owner="b")], 3)) == [2, 1, 3]


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_fair_shares_slots_evenly_between_owners_of_equal_demand(capacity):
    max_tokens = 4
    processes = flood("a", 60, 1, 0, max_tokens=max_tokens)
    processes += flood("b", 60, 101, 60, max_tokens=max_tokens)  # b arrives after all of a's
    slots = simulate(make_policy("fair"), processes, capacity, ticks=100)
    assert slots["a"] + slots["b"] == 100 * capacity
    assert abs(slots["a"] - slots["b"]) <= max_tokens  # at most one request apart


def test_fcfs_starves_the_late_owner_that_fair_serves():
    processes = flood("a", 60, 1, 0) + flood("b", 60, 101, 60)
    assert simulate(make_policy("fcfs"), processes, 3, ticks=100)["b"] == 0


def test_fair_priority_orders_an_owners_own_processes_but_never_outranks_another_owner():
    high = flood("a", 3, 1, 0, priority=1000)
    low = P(4, 3, owner="b", state=ProcessState.RUNNING)
    assert sorted(pids(make_policy("fair").select([*high, low], 2))) == [1, 4]
    own = [P(5, 4, owner="b", priority=5), low]
    assert pids(make_policy("fair").select([*high, *own], 2)) == [1, 5]


@pytest.mark.parametrize("capacity", [1, 2, 4, 8])
def test_fair_with_one_owner_chooses_as_fcfs(capacity):
    processes = flood("a", 6, 1, 0)
    for p in (processes[1], processes[4]):
        p.state = ProcessState.RUNNING
    mixed = processes[::-1]
    expected = pids(make_policy("fcfs").select(mixed, capacity))
    assert pids(make_policy("fair").select(mixed, capacity)) == expected


def test_fair_owners_order_by_charge_and_a_newcomer_starts_at_the_floor():
    policy = make_policy("fair")
    a, b = P(1, 0, owner="a"), P(2, 1, owner="b")
    policy.select([a], 1)
    policy.charge(a, 100)
    # b was not there while a ran alone: it gets no credit for a's 100 tokens
    assert pids(policy.select([a, b], 1)) == [1]
    assert policy.charged_tokens() == {"a": 100, "b": 100}
    policy.charge(a, 1)
    assert pids(policy.select([a, b, P(3, 2, owner="a")], 1)) == [2]


def test_fair_owner_keeps_its_charge_through_a_short_idle_spell_only():
    policy = FairShare(idle_ticks=3)
    a, b = P(1, 0, owner="a"), P(2, 1, owner="b")
    policy.select([a, b], 2)
    policy.charge(a, 50)
    policy.charge(b, 10)
    policy.select([b], 1)  # a pauses one tick: it does not come back at b's lower charge
    assert pids(policy.select([b, P(3, 2, owner="a")], 1)) == [2]
    assert policy.charged_tokens() == {"a": 50, "b": 10}
    for _ in range(3):
        policy.select([b], 1)
    assert policy.charged_tokens() == {"a": 50, "b": 10}
    policy.select([b], 1)  # a's fourth tick without work: forgotten
    assert policy.charged_tokens() == {"b": 10}
    policy.select([], 1)
    policy.select([a], 1)  # back after being forgotten: it starts at the floor
    assert policy.charged_tokens() == {"a": 10, "b": 10}
