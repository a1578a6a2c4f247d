"""Kernel configuration: a validated dataclass, checked once against the engine it will drive."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmasos.engine.base import EngineInfo
from llmasos.errors import InvalidRequestError
from llmasos.kernel.scheduler import POLICIES


@dataclass(frozen=True)
class KernelConfig:
    """How the kernel schedules.

    policy        one of fcfs, sjf, rr, priority, fair (see kernel.scheduler)
    max_running   the most processes in one engine step
    quantum       rr only: tokens a process generates before it yields its place
    trace_length  how many recent ticks the kernel remembers (for ps/top and tests)
    max_live_processes  spawns beyond this many unfinished processes are refused (busy)
    keep_finished       how many ended processes stay in the table for ps and late waiters
    page_size           tokens per KV page, the unit of memory accounting and quotas
    min_prefix_tokens   the shortest cached prefix worth reusing instead of recomputing
    swap_bytes          host RAM for swapped-out KV state; beyond it, snapshots go to disk
    swap_directory      where snapshots spill (default: a folder in the system temp dir)
    swap_key            32 bytes: seal snapshots spilled to disk with AES-GCM (Client and
                        `llmasos serve` derive it from LLMASOS_MASTER_KEY when that is set)
    max_pages_per_process, max_pages_per_owner   KV page quotas (None: unlimited)
    """

    policy: str = "fcfs"
    max_running: int = 16
    quantum: int = 16
    trace_length: int = 4096
    max_live_processes: int = 4096
    keep_finished: int = 1024
    page_size: int = 16
    min_prefix_tokens: int = 8
    swap_bytes: int = 2 * 1024**3
    swap_directory: Path | None = None
    swap_key: bytes | None = field(default=None, repr=False)
    max_pages_per_process: int | None = None
    max_pages_per_owner: int | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidRequestError(
                "policy", f"unknown policy {self.policy!r}; choose one of {sorted(POLICIES)}"
            )
        for name in (
            "max_running",
            "quantum",
            "trace_length",
            "max_live_processes",
            "keep_finished",
            "page_size",
            "min_prefix_tokens",
            "swap_bytes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequestError(name, f"must be an integer >= 1, got {value!r}")

        if self.swap_key is not None and (
            not isinstance(self.swap_key, bytes) or len(self.swap_key) != 32
        ):
            raise InvalidRequestError("swap_key", "must be 32 bytes")
        for name in ("max_pages_per_process", "max_pages_per_owner"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise InvalidRequestError(name, f"must be None or an integer >= 1, got {value!r}")

    def check_against(self, info: EngineInfo) -> None:
        """Raise if this configuration cannot work on an engine described by `info`."""
        if self.max_running > info.num_slots:
            raise InvalidRequestError(
                "max_running",
                f"must be <= the engine's {info.num_slots} slots, got {self.max_running}",
            )
        if self.max_running > info.max_batch_tokens:
            raise InvalidRequestError(
                "max_running",
                f"must be <= the engine's batch of {info.max_batch_tokens} tokens, "
                f"got {self.max_running}",
            )
