"""Scheduling policies: which runnable processes join the next engine step.

A policy sees processes, never the engine or the KV cache. Each tick the kernel hands it every
runnable process (RUNNING, READY or SWAPPED) and a capacity; the policy returns, in priority order,
the ones it wants running. Whoever it leaves out is preempted (if it was running) or keeps waiting.

    fcfs      first come, first served; non-preemptive
    sjf       shortest job first, by max_tokens; non-preemptive
    rr        round robin; a process runs for `quantum` generated tokens, then goes to the back
              of the queue if someone is waiting (a context switch)
    priority  higher integer priority first; preemptive: an arrival of higher priority takes the
              place of the lowest-priority running process at once, and the step computing
              its prompt runs it without the others (they wait that one step)
Ties always go to the earlier arrival.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from llmasos.errors import InvalidRequestError
from llmasos.kernel.process import Process, ProcessState


class Policy(ABC):
    """Chooses who runs. Stateless policies implement select(); others may track charge()."""

    name: ClassVar[str]
    # A step that computes the prompt of a process outranking others runs it alone (with
    # its equals): see planner._isolate_urgent.
    isolates_urgent: ClassVar[bool] = False

    @abstractmethod
    def select(self, runnable: Sequence[Process], capacity: int) -> list[Process]:
        """The processes to run this tick, most urgent first, at most `capacity` of them."""

    def charge(self, process: Process, generated_tokens: int) -> None:
        """Account tokens a process generated in the last step (for quantum-based policies)."""
        return None

    def forget(self, process: Process) -> None:
        """The process left the runnable set for good."""
        return None


def _running_first(runnable: Sequence[Process]) -> tuple[list[Process], list[Process]]:
    running = [p for p in runnable if p.state is ProcessState.RUNNING]
    waiting = [p for p in runnable if p.state is not ProcessState.RUNNING]
    return running, waiting


class FirstComeFirstServed(Policy):
    name = "fcfs"

    def select(self, runnable: Sequence[Process], capacity: int) -> list[Process]:
        running, waiting = _running_first(runnable)
        waiting.sort(key=lambda p: p.arrival)
        return (sorted(running, key=lambda p: p.arrival) + waiting)[:capacity]


class ShortestJobFirst(Policy):
    name = "sjf"

    def select(self, runnable: Sequence[Process], capacity: int) -> list[Process]:
        running, waiting = _running_first(runnable)
        waiting.sort(key=lambda p: (p.params.max_tokens, p.arrival))
        return (sorted(running, key=lambda p: p.arrival) + waiting)[:capacity]


class Priority(Policy):
    name = "priority"
    isolates_urgent = True

    def select(self, runnable: Sequence[Process], capacity: int) -> list[Process]:
        # A running process keeps its place against a waiting one of equal priority.
        return sorted(
            runnable,
            key=lambda p: (-p.priority, p.state is not ProcessState.RUNNING, p.arrival),
        )[:capacity]


class RoundRobin(Policy):
    name = "rr"

    def __init__(self, quantum: int = 16) -> None:
        if quantum < 1:
            raise InvalidRequestError("quantum", f"must be >= 1 token, got {quantum}")
        self.quantum = quantum
        self._tickets = itertools.count()
        self._queue_position: dict[int, int] = {}  # pid -> place in the circular queue
        self._used: dict[int, int] = {}  # pid -> tokens generated in the current turn

    def select(self, runnable: Sequence[Process], capacity: int) -> list[Process]:
        for p in sorted(runnable, key=lambda p: p.arrival):
            if p.pid not in self._queue_position:
                self._queue_position[p.pid] = next(self._tickets)
        someone_waits = len(runnable) > capacity
        for p in runnable:
            if self._used.get(p.pid, 0) >= self.quantum:
                self._used[p.pid] = 0
                if someone_waits:
                    self._queue_position[p.pid] = next(self._tickets)
        return sorted(runnable, key=lambda p: self._queue_position[p.pid])[:capacity]

    def charge(self, process: Process, generated_tokens: int) -> None:
        self._used[process.pid] = self._used.get(process.pid, 0) + generated_tokens

    def forget(self, process: Process) -> None:
        self._queue_position.pop(process.pid, None)
        self._used.pop(process.pid, None)


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (FirstComeFirstServed, ShortestJobFirst, RoundRobin, Priority)
}


def make_policy(name: str, *, quantum: int = 16) -> Policy:
    """The policy called `name`; raises InvalidRequestError listing the known names."""
    if name not in POLICIES:
        raise InvalidRequestError(
            "policy", f"unknown policy {name!r}; choose one of {sorted(POLICIES)}"
        )
    return RoundRobin(quantum) if name == RoundRobin.name else POLICIES[name]()
