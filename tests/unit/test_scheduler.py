"""Policies in isolation: which processes they choose, in what order."""

from dataclasses import dataclass, field

import pytest

from llmasos.errors import InvalidRequestError
from llmasos.kernel.process import ProcessState
from llmasos.kernel.scheduler import make_policy
from llmasos.sampling import SamplingParams


@dataclass(eq=False)
class P:
    pid: int
    arrival: int
    priority: int = 0
    max_tokens: int = 10
    state: ProcessState = ProcessState.READY
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
