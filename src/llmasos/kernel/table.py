"""The process table: every live process, and the most recent ended ones for ps and late waiters.

Syscalls read it from any thread; the kernel's tick thread adds and retires processes. Every
method takes the table's lock, so a reader always sees a whole table.
"""

from __future__ import annotations

import threading
from collections import deque

from llmasos.errors import KernelBusyError, NoSuchProcessError
from llmasos.kernel.process import Process


class ProcessTable:
    def __init__(self, *, max_live: int, keep_finished: int) -> None:
        self.max_live = max_live
        self.keep_finished = keep_finished
        self._processes: dict[int, Process] = {}
        self._live: set[int] = set()
        self._finished: deque[int] = deque()
        self._lock = threading.Lock()

    def add(self, process: Process) -> None:
        """Enter a new process; KernelBusyError when max_live are already live."""
        with self._lock:
            if len(self._live) >= self.max_live:
                raise KernelBusyError(self.max_live)
            self._processes[process.pid] = process
            self._live.add(process.pid)

    def retire(self, process: Process) -> None:
        """The process ended; forget the oldest ended ones beyond keep_finished."""
        with self._lock:
            self._live.discard(process.pid)
            self._finished.append(process.pid)
            while len(self._finished) > self.keep_finished:
                del self._processes[self._finished.popleft()]

    def get(self, pid: int) -> Process:
        with self._lock:
            if pid not in self._processes:
                raise NoSuchProcessError(pid)
            return self._processes[pid]

    def has(self, pid: int) -> bool:
        with self._lock:
            return pid in self._processes

    def all(self) -> list[Process]:
        """Every process in the table, oldest first."""
        with self._lock:
            return list(self._processes.values())

    def live(self) -> list[Process]:
        """The processes that have not ended, oldest first."""
        with self._lock:
            return [self._processes[pid] for pid in sorted(self._live)]

    @property
    def num_live(self) -> int:
        with self._lock:
            return len(self._live)
