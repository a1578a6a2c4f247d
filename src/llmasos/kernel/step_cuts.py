"""When an interactive arrival cuts a step of background work short.

Under a policy with a background floor (fair), a step that runs background processes only (below
the floor, such as batch lines) may be cut short by a process at or above the floor that
arrives while it runs: the engine undoes the step, nothing is accounted,
and the next plan computes the newcomer's prompt first (kernel/tick.py). Two rules keep this
from costing more than it gives:

- An arrival the plan under way missed (it came after the tick took its commands) cuts the step
  as soon as it starts, so no arrival waits a whole background step.
- After a cut, the background's next step runs whole: every cut is made up before the next one,
  so interactive arrivals, however frequent, never starve background work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from llmasos.engine.base import Engine
from llmasos.kernel.process import Process


class BackgroundCuts:
    def __init__(self, engine: Engine, floor: int | None) -> None:
        self._engine = engine
        self._floor = floor
        self._lock = threading.Lock()
        self._cuttable = False  # the step under way runs background work only, and may be cut
        self._arrivals = 0  # interactive processes spawned so far
        self._planned = 0  # how many of them the plan under way knew of
        self._owed = False  # a step was cut and no background step has run whole since

    @property
    def cuttable(self) -> bool:
        return self._cuttable

    def arrived(self, process: Process) -> None:
        """`process` was just queued (called under the kernel's lock, like commands_taken)."""
        if self._floor is None or process.priority < self._floor:
            return
        with self._lock:
            self._arrivals += 1
            if self._cuttable:
                self._engine.interrupt()

    def commands_taken(self) -> None:
        """The tick took the queued commands: its plan knows every arrival so far."""
        with self._lock:
            self._planned = self._arrivals

    def step_starts(self, processes: Sequence[Process]) -> None:
        with self._lock:
            self._engine.interrupt(False)
            self._cuttable = self._background_only(processes) and not self._owed
            if self._cuttable and self._arrivals != self._planned:
                self._engine.interrupt()  # an arrival this plan missed

    def step_ends(self, processes: Sequence[Process], cut: bool) -> None:
        with self._lock:  # an interrupt lands only on the step it was meant for
            self._engine.interrupt(False)
            self._cuttable = False
            if cut:
                self._owed = True
            elif self._floor is not None and any(p.priority < self._floor for p in processes):
                self._owed = False  # a background step ran whole: the cut is made up

    def _background_only(self, processes: Sequence[Process]) -> bool:
        floor = self._floor
        return floor is not None and all(process.priority < floor for process in processes)
