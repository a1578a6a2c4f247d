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
    fair      per-owner fair share, so one owner's flood cannot starve another owner. The slots
              are dealt round-robin across owners, one process per owner per round, so an
              owner with one request runs beside one with a hundred. Priority orders an
              owner's own processes only (higher first, then running, then by arrival): any
              client may ask for any priority, so across owners it would let a flood outrank
              everyone. Within a round, owners go least-charged first: each owner's generated
              tokens are its virtual time, and an owner that becomes runnable starts no lower
              than the floor (the least charge among runnable owners, which never falls), so
              idling earns no credit and a newcomer owes nothing for others' past. An owner
              with nothing runnable for `idle_ticks` ticks is forgotten. Preemptive across
              owners: a waiting process takes the place of a running one when its owner has
              at least two fewer processes running than the other owner, so running counts
              even out to within one and never swing back (no thrash; an owner preempts its
              own processes only by priority). Only generated tokens are charged. A step that
              computes the prompt of a process of priority 0 or more leaves out the background
              processes (negative priority: batch lines), so their prompts do not lengthen it.
Ties always go to the earlier arrival.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from llmasos.errors import InvalidRequestError
from llmasos.kernel.process import Process, ProcessState


class Policy(ABC):
    """Chooses who runs. Stateless policies implement select(); others may track charge()."""

    name: ClassVar[str]
    # A step that computes the prompt of a process outranking others runs it alone (with
    # its equals): see planner._isolate_urgent.
    isolates_urgent: ClassVar[bool] = False
    # With a number: a step computing the prompt of a process of at least this priority
    # leaves out the processes below it (background work): see planner._isolate_background.
    background_below: ClassVar[int | None] = None

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


@dataclass
class OwnerShare:
    """One owner's account under the fair policy."""

    charged_tokens: int = 0  # virtual time: generated tokens, raised to the floor on return
    last_runnable_tick: int = 0  # the last select() in which it had a runnable process


def _rounds(runnable: Sequence[Process]) -> dict[int, int]:
    """pid -> the round in which its owner deals it a slot: the owner's processes by
    priority, running ones first among equals, then by arrival."""
    groups: dict[str, list[Process]] = {}
    for p in runnable:
        groups.setdefault(p.owner, []).append(p)
    rounds: dict[int, int] = {}
    for group in groups.values():
        group.sort(key=lambda p: (-p.priority, p.state is not ProcessState.RUNNING, p.arrival))
        rounds.update((p.pid, index) for index, p in enumerate(group))
    return rounds


class FairShare(Policy):
    """Per-owner fair share (see the module docstring)."""

    name = "fair"
    background_below = 0  # any client may lower its priority, so only that counts across owners

    def __init__(self, idle_ticks: int = 256) -> None:
        if idle_ticks < 1:
            raise InvalidRequestError("idle_ticks", f"must be >= 1 tick, got {idle_ticks}")
        self.idle_ticks = idle_ticks
        self._tick = 0
        self._floor = 0  # the least charge among runnable owners; never decreases
        self._owners: dict[str, OwnerShare] = {}
        self._runnable_owners: set[str] = set()  # owners with a runnable process last tick

    def select(self, runnable: Sequence[Process], capacity: int) -> list[Process]:
        self._tick += 1
        self._update_owners(runnable)
        rank = self._owner_rank(runnable)
        rounds = _rounds(runnable)
        return sorted(
            runnable,
            key=lambda p: (
                rounds[p.pid],
                p.state is not ProcessState.RUNNING,
                rank[p.owner],
                p.arrival,
            ),
        )[:capacity]

    def charge(self, process: Process, generated_tokens: int) -> None:
        share = self._owners.setdefault(process.owner, OwnerShare(self._floor, self._tick))
        share.charged_tokens += generated_tokens

    def charged_tokens(self) -> dict[str, int]:
        """Owner -> its charge (virtual time), for the owners the policy still remembers."""
        return {owner: share.charged_tokens for owner, share in self._owners.items()}

    def _update_owners(self, runnable: Sequence[Process]) -> None:
        """Move the floor up to last tick's least charge, raise returning owners to it,
        forget long-idle owners."""
        previous = [self._owners[o].charged_tokens for o in self._runnable_owners]
        self._floor = max(self._floor, min(previous, default=0))
        present = {p.owner for p in runnable}
        for owner in present:
            share = self._owners.setdefault(owner, OwnerShare(self._floor))
            if owner not in self._runnable_owners:
                share.charged_tokens = max(share.charged_tokens, self._floor)
            share.last_runnable_tick = self._tick
        self._runnable_owners = present
        for owner in [o for o, s in self._owners.items() if self._is_stale(s)]:
            del self._owners[owner]

    def _is_stale(self, share: OwnerShare) -> bool:
        return self._tick - share.last_runnable_tick > self.idle_ticks

    def _owner_rank(self, runnable: Sequence[Process]) -> dict[str, int]:
        """Owner -> its place in every round: least charged first, then earliest arrival."""
        first_arrival: dict[str, int] = {}
        for p in runnable:
            first_arrival[p.owner] = min(p.arrival, first_arrival.get(p.owner, p.arrival))
        owners = sorted(
            first_arrival, key=lambda o: (self._owners[o].charged_tokens, first_arrival[o])
        )
        return {owner: index for index, owner in enumerate(owners)}


POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (FirstComeFirstServed, ShortestJobFirst, RoundRobin, Priority, FairShare)
}


def make_policy(name: str, *, quantum: int = 16) -> Policy:
    """The policy called `name`; raises InvalidRequestError listing the known names."""
    if name not in POLICIES:
        raise InvalidRequestError(
            "policy", f"unknown policy {name!r}; choose one of {sorted(POLICIES)}"
        )
    return RoundRobin(quantum) if name == RoundRobin.name else POLICIES[name]()
