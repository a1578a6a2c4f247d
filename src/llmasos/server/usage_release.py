"""What /v1/stats and /v1/memory tell a caller who does not see every owner's objects.

/v1/stats: the model's configuration exactly, and its usage counters with differential privacy
(llmasos.security.privacy): epsilon STATS_EPSILON per STATS_WINDOW_S window, split over these
queries, each with its L1 sensitivity to one process more or less (C the context length, S the
slot count):

    generated_tokens, prompt_tokens, steps              C each (a process feeds at most C
                                                        tokens, one or more per step)
    kv_tokens                                           (S+1)*C (its arrival can also push
                                                        S others out of their slots)
    swap_outs + swap_ins                                2*S*C (its arrival can preempt up to
                                                        S others at each of its steps)
    processes by state + num_used_slots                 3*S + 2 (it is counted once; its
                                                        arrival can move S others between
                                                        states and slots)

/v1/memory: the caller's own processes and what they hold (used pages, slots, swap bytes),
the configuration (page size, pages, slots, the swap RAM limit) exactly, and zero for every
counter that depends on other owners (free and cached pages, prefix-cache and swap counts):
/v1/stats is where aggregates are released.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmasos.kernel.process import ProcessState
from llmasos.kernel.stats import KernelStatus, MemoryReport
from llmasos.security.privacy import PrivateRelease, Query

STATS_EPSILON = 1.0
STATS_WINDOW_S = 60.0
_STATES = tuple(f"processes.{state.value}" for state in ProcessState)


def released_status(release: PrivateRelease, status: KernelStatus) -> dict[str, Any]:
    """The status with its usage counters replaced by their private release."""
    context, slots = status.context_length, status.num_slots
    values = dataclasses.asdict(status)
    counts = {**values, **{f"processes.{k}": v for k, v in status.processes.items()}}
    counts |= {name: counts.get(name, 0) for name in _STATES}
    queries = [
        Query(("generated_tokens",), context),
        Query(("prompt_tokens",), context),
        Query(("kv_tokens",), (slots + 1) * context),
        Query(("steps",), context),
        Query(("swap_outs", "swap_ins"), 2 * slots * context),
        Query((*_STATES, "num_used_slots"), 3 * slots + 2),
    ]
    noisy = release.release(status.model, counts, queries)
    values.update({k: v for k, v in noisy.items() if not k.startswith("processes.")})
    values["num_used_slots"] = min(slots, noisy["num_used_slots"])
    values["processes"] = {n.split(".", 1)[1]: noisy[n] for n in _STATES if noisy[n]}
    return values


def own_memory(report: MemoryReport, owner: str) -> MemoryReport:
    """The report with only `owner`'s processes and no counters of anyone else's."""
    own = [p for p in report.processes if p.owner == owner]
    return MemoryReport(
        page_size=report.page_size,
        total_pages=report.total_pages,
        used_pages=sum(p.pages for p in own),
        cached_pages=0,
        free_pages=0,
        num_slots=report.num_slots,
        owned_slots=sum(p.slot is not None for p in own),
        cached_slots=0,
        free_slots=0,
        prefix_hits=0,
        prefix_misses=0,
        prefix_tokens_reused=0,
        prefix_copies=0,
        evictions=0,
        swap_outs=0,
        swap_ins=0,
        swap_ram_bytes=sum(p.swapped_bytes for p in own if p.swap_location == "ram"),
        swap_ram_limit_bytes=report.swap_ram_limit_bytes,
        swap_disk_bytes=sum(p.swapped_bytes for p in own if p.swap_location == "disk"),
        swap_spills=0,
        processes=own,
    )
