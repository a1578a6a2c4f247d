"""Every replica's answer to one report, merged into what a single server holding the whole
pool would answer: GET /v1/processes and /v1/agents list every replica's rows (by pid), GET
/v1/stats and /v1/memory add up the counters (pages, slots, tokens, swaps, processes by state).
`llmasos top` and `llmasos ps` through the front so show the whole pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Merge = Callable[[list[dict[str, Any]]], dict[str, Any]]

SAME_EVERYWHERE = {"object", "model", "policy", "page_size", "context_length"}
LARGEST = {"uptime_s"}  # the pool has been up as long as its oldest replica


def merged_lists(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """{"object": "list", "data": [...]} replies as one list, ordered by pid."""
    rows = [row for body in bodies for row in body.get("data", [])]
    return {"object": "list", "data": sorted(rows, key=_pid)}


def merged_reports(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Reports (/v1/stats, /v1/memory) as one: numbers added, nested counts merged, lists of
    rows joined by pid; the fields every replica shares (model, page size) taken once; the
    prefix hit rate worked out again from the added hits and misses."""
    result: dict[str, Any] = {}
    for body in bodies:
        for key, value in body.items():
            result[key] = _combined(key, result[key], value) if key in result else value
    if "prefix_hit_rate" in result:
        lookups = result.get("prefix_hits", 0) + result.get("prefix_misses", 0)
        result["prefix_hit_rate"] = (
            round(result.get("prefix_hits", 0) / lookups, 4) if lookups else 0.0
        )
    return result


def _combined(key: str, mine: Any, theirs: Any) -> Any:
    if key in LARGEST and _is_number(mine) and _is_number(theirs):
        return max(mine, theirs)
    if key in SAME_EVERYWHERE:
        return mine
    if _is_number(mine) and _is_number(theirs):
        return mine + theirs
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return merged_reports([mine, theirs])
    if isinstance(mine, list) and isinstance(theirs, list):
        return sorted(mine + theirs, key=_pid)
    return mine  # anything else (a string, a null) is the first replica's


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pid(row: Any) -> int:
    pid = row.get("pid") if isinstance(row, dict) else None
    return pid if isinstance(pid, int) else 0
