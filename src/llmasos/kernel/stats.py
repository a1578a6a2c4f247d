"""Kernel counters and latency histograms, read by /metrics, /v1/stats and `llmasos top`."""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """A cumulative-bucket histogram in the Prometheus sense; safe to observe from one thread
    while others read a snapshot."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last bucket is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.bounds, value)] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[int], float, int]:
        """(cumulative counts per bound and +Inf, sum, count)."""
        with self._lock:
            cumulative, running = [], 0
            for count in self._counts:
                running += count
                cumulative.append(running)
            return cumulative, self._sum, running


@dataclass(frozen=True)
class TickRecord:
    """One engine step: which processes took part and how many tokens each fed."""

    tick: int
    duration_s: float
    batch: tuple[tuple[int, int], ...]  # (pid, tokens fed)
    generated_tokens: int


@dataclass
class KernelStats:
    """Totals since the kernel started. Mutated by the tick thread only."""

    started_at: float = field(default_factory=time.monotonic)
    generated_tokens: int = 0
    prompt_tokens: int = 0
    steps: int = 0
    interrupted_steps: int = 0  # steps of background work cut short for an interactive prompt
    time_to_first_token_s: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS_S))
    queue_wait_s: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS_S))
    owner_generated_tokens: dict[str, int] = field(default_factory=dict)
    owner_prompt_tokens: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class KernelStatus:
    """A snapshot of the kernel for dashboards (`llmasos top`, GET /v1/stats)."""

    model: str
    policy: str
    uptime_s: float
    generated_tokens: int
    prompt_tokens: int
    steps: int
    swap_outs: int
    swap_ins: int
    processes: dict[str, int]  # state name -> count
    num_slots: int
    num_used_slots: int
    context_length: int
    kv_tokens: int  # tokens held in the KV cache by resident processes


@dataclass(frozen=True)
class ProcessMemory:
    """One live process's share of KV memory."""

    pid: int
    owner: str
    state: str
    slot: int | None  # None when swapped out or not yet resident
    kv_tokens: int  # tokens its KV holds (in the engine, or in its swap snapshot)
    pages: int
    reserved_pages: int  # what its prompt plus max_tokens may need: what quotas count
    swapped_bytes: int
    swap_location: str | None  # "ram", "disk" or None


@dataclass(frozen=True)
class MemoryReport:
    """KV memory in pages and slots, the prefix cache's effect and swap use."""

    page_size: int  # tokens per page
    total_pages: int
    used_pages: int  # held by live processes
    cached_pages: int  # held by ended processes, kept as prefix cache
    free_pages: int
    num_slots: int
    owned_slots: int
    cached_slots: int
    free_slots: int
    prefix_hits: int
    prefix_misses: int
    prefix_tokens_reused: int
    prefix_copies: int
    evictions: int
    swap_outs: int
    swap_ins: int
    swap_ram_bytes: int
    swap_ram_limit_bytes: int
    swap_disk_bytes: int
    swap_spills: int  # snapshots that went to disk because RAM was over swap_bytes
    processes: list[ProcessMemory]

    @property
    def prefix_hit_rate(self) -> float:
        lookups = self.prefix_hits + self.prefix_misses
        return self.prefix_hits / lookups if lookups else 0.0
