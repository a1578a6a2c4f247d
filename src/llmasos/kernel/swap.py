"""Swap space for KV snapshots: host RAM up to a byte budget, then files on disk.

A context switch stores a process's KV state here and takes it back when the process runs
again. When RAM is over budget, the least recently stored snapshots spill to disk.
"""

from __future__ import annotations

import enum
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path


class SwapLocation(enum.Enum):
    RAM = "ram"
    DISK = "disk"


@dataclass(frozen=True)
class SwapUsage:
    ram_bytes: int
    ram_limit_bytes: int
    disk_bytes: int
    entries: int
    spills: int  # snapshots written to disk so far


class SwapSpace:
    """Snapshots keyed by pid. Not thread-safe: the kernel's tick thread owns it."""

    def __init__(self, ram_limit_bytes: int, directory: Path) -> None:
        self.ram_limit_bytes = ram_limit_bytes
        self._parent = directory
        self._directory: Path | None = None  # created on first spill
        self._ram: OrderedDict[int, bytes] = OrderedDict()  # oldest first
        self._disk: dict[int, tuple[Path, int]] = {}
        self._ram_bytes = 0
        self._spills = 0

    def put(self, pid: int, state: bytes) -> None:
        self.discard(pid)
        self._ram[pid] = state
        self._ram_bytes += len(state)
        while self._ram_bytes > self.ram_limit_bytes and self._ram:
            self._spill(next(iter(self._ram)))

    def take(self, pid: int) -> bytes:
        """The snapshot of `pid`, removed from swap. KeyError if there is none."""
        if pid in self._ram:
            state = self._ram.pop(pid)
            self._ram_bytes -= len(state)
            return state
        path, _ = self._disk.pop(pid)
        state = path.read_bytes()
        path.unlink()
        return state

    def discard(self, pid: int) -> None:
        if pid in self._ram:
            self._ram_bytes -= len(self._ram.pop(pid))
        elif pid in self._disk:
            self._disk.pop(pid)[0].unlink(missing_ok=True)

    def location(self, pid: int) -> SwapLocation | None:
        if pid in self._ram:
            return SwapLocation.RAM
        return SwapLocation.DISK if pid in self._disk else None

    def size(self, pid: int) -> int:
        if pid in self._ram:
            return len(self._ram[pid])
        return self._disk[pid][1] if pid in self._disk else 0

    def usage(self) -> SwapUsage:
        return SwapUsage(
            ram_bytes=self._ram_bytes,
            ram_limit_bytes=self.ram_limit_bytes,
            disk_bytes=sum(size for _, size in self._disk.values()),
            entries=len(self._ram) + len(self._disk),
            spills=self._spills,
        )

    def close(self) -> None:
        self._ram.clear()
        self._disk.clear()
        self._ram_bytes = 0
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def _spill(self, pid: int) -> None:
        if self._directory is None:
            self._parent.mkdir(parents=True, exist_ok=True)
            self._directory = Path(tempfile.mkdtemp(prefix="swap-", dir=self._parent))
        state = self._ram.pop(pid)
        self._ram_bytes -= len(state)
        path = self._directory / f"{pid}.kv"
        path.write_bytes(state)
        self._disk[pid] = (path, len(state))
        self._spills += 1
