"""Swap space for KV snapshots: host RAM up to a byte budget, then files on disk.

A context switch stores a process's KV state here and takes it back when the process runs
again. When RAM is over budget, the least recently stored snapshots spill to disk. Nothing is
ever dropped on an I/O error: a spill that cannot be written keeps the snapshot in RAM (over
budget, logged), and a snapshot that cannot be read back stays where it is and raises
SwapError. The kernel's tick thread changes it; monitoring threads read its usage, so every
method takes the space's lock. With a sealer, files on disk are sealed with AES-GCM, bound to
the pid and that spill's random id, so an altered or swapped file is refused (SwapError).
"""

from __future__ import annotations

import enum
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from llmasos.errors import IntegrityError, SwapError
from llmasos.security.crypto import Sealer

logger = logging.getLogger(__name__)


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
    """Snapshots keyed by pid."""

    def __init__(
        self, ram_limit_bytes: int, directory: Path, *, sealer: Sealer | None = None
    ) -> None:
        self.ram_limit_bytes = ram_limit_bytes
        self._sealer = sealer
        self._parent = directory
        self._directory: Path | None = None  # created on first spill
        self._ram: OrderedDict[int, bytes] = OrderedDict()  # oldest first
        self._disk: dict[int, tuple[Path, int]] = {}  # pid -> (file, bytes on disk)
        self._ram_bytes = 0
        self._spills = 0
        self._lock = threading.RLock()

    def put(self, pid: int, state: bytes) -> None:
        with self._lock:
            self.discard(pid)
            self._ram[pid] = state
            self._ram_bytes += len(state)
            for oldest in list(self._ram):
                if self._ram_bytes <= self.ram_limit_bytes:
                    break
                if not self._spill(oldest):
                    break  # the disk refused: keep the rest in RAM rather than lose it

    def take(self, pid: int) -> bytes:
        """The snapshot of `pid`, removed from swap. KeyError if there is none; SwapError (the
        snapshot stays) if it cannot be read from disk."""
        with self._lock:
            if pid in self._ram:
                state = self._ram.pop(pid)
                self._ram_bytes -= len(state)
                return state
            path, size = self._disk[pid]
            try:
                state = path.read_bytes()
            except OSError as error:
                raise SwapError(
                    f"pid {pid}: its KV snapshot could not be read ({error})"
                ) from error
            if len(state) != size:
                raise SwapError(
                    f"pid {pid}: its KV snapshot on disk has {len(state)} of {size} bytes"
                )
            if self._sealer is not None:
                try:
                    state = self._sealer.open(SWAP_OWNER, _bound(pid, path), state)
                except IntegrityError as error:
                    raise SwapError(f"pid {pid}: {error}") from error
            del self._disk[pid]
            path.unlink(missing_ok=True)
            return state

    def discard(self, pid: int) -> None:
        with self._lock:
            if pid in self._ram:
                self._ram_bytes -= len(self._ram.pop(pid))
            elif pid in self._disk:
                path, _ = self._disk.pop(pid)
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    logger.warning("could not delete swap file %s", path)

    def location(self, pid: int) -> SwapLocation | None:
        with self._lock:
            if pid in self._ram:
                return SwapLocation.RAM
            return SwapLocation.DISK if pid in self._disk else None

    def size(self, pid: int) -> int:
        with self._lock:
            if pid in self._ram:
                return len(self._ram[pid])
            return self._disk[pid][1] if pid in self._disk else 0

    def usage(self) -> SwapUsage:
        with self._lock:
            return SwapUsage(
                ram_bytes=self._ram_bytes,
                ram_limit_bytes=self.ram_limit_bytes,
                disk_bytes=sum(size for _, size in self._disk.values()),
                entries=len(self._ram) + len(self._disk),
                spills=self._spills,
            )

    def close(self) -> None:
        with self._lock:
            self._ram.clear()
            self._disk.clear()
            self._ram_bytes = 0
            if self._directory is not None:
                shutil.rmtree(self._directory, ignore_errors=True)
                self._directory = None

    def _spill(self, pid: int) -> bool:
        """Move one snapshot from RAM to disk; False (it stays in RAM) if the disk refuses."""
        state = self._ram[pid]
        try:
            if self._directory is None:
                self._parent.mkdir(parents=True, exist_ok=True)
                self._directory = Path(tempfile.mkdtemp(prefix="swap-", dir=self._parent))
            path = self._directory / f"{pid}-{os.urandom(8).hex()}.kv"
            stored = state
            if self._sealer is not None:
                stored = self._sealer.seal(SWAP_OWNER, _bound(pid, path), state)
            _write_whole(path, stored)
        except OSError as error:
            logger.warning("swap: pid %d stays in RAM over budget; disk refused it: %s", pid, error)
            return False
        del self._ram[pid]
        self._ram_bytes -= len(state)
        self._disk[pid] = (path, len(stored))
        self._spills += 1
        return True


SWAP_OWNER = "kernel-swap"  # the key swap files are sealed with


def _bound(pid: int, path: Path) -> bytes:
    return f"swap\x00{pid}\x00{path.name}".encode()


def _write_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path`, or raise OSError and leave no part of it (a full disk)."""
    try:
        path.write_bytes(data)
    except OSError:
        path.unlink(missing_ok=True)
        raise
