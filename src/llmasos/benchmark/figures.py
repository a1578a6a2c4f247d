"""A workload's figures from its records, and the ratios of two servers' figures."""

from __future__ import annotations

import statistics

from llmasos.benchmark.loadgen import RequestRecord, percentile
from llmasos.benchmark.workloads import Outcome

# figure -> True where higher is better; the ratios `--compare` prints
COMPARED = {
    "throughput_tokens_per_s": True,
    "requests_per_s": True,
    "ttft_p50_s": False,
    "ttft_p99_s": False,
    "latency_p50_s": False,
    "tpot_p50_s": False,
    "prefix_hit_rate": True,
    "probe_ttft_loaded_over_idle": False,
    "exact_text_rate": True,
}


def _spread(name: str, values: list[float]) -> dict[str, float | None]:
    if not values:
        return {f"{name}_p50_s": None, f"{name}_p90_s": None, f"{name}_p99_s": None}
    return {
        f"{name}_p50_s": round(statistics.median(values), 4),
        f"{name}_p90_s": round(percentile(values, 90), 4),
        f"{name}_p99_s": round(percentile(values, 99), 4),
    }


def summarize(records: list[RequestRecord], wall_s: float) -> dict[str, float | int | None]:
    """Counts, rates and spreads (p50, p90, p99) of TTFT, latency and time per output token."""
    tokens = sum(r.completion_tokens for r in records)
    prompt_tokens = sum(r.prompt_tokens for r in records)
    tpots = [t for r in records if (t := r.time_per_output_token_s) is not None]
    return {
        "requests": len(records),
        "completion_tokens": tokens,
        "prompt_tokens": prompt_tokens,
        "wall_s": round(wall_s, 3),
        "throughput_tokens_per_s": round(tokens / wall_s, 2) if wall_s else None,
        "requests_per_s": round(len(records) / wall_s, 3) if wall_s else None,
        **_spread("ttft", [r.ttft_s for r in records]),
        **_spread("latency", [r.total_s for r in records]),
        "tpot_p50_s": round(statistics.median(tpots), 5) if tpots else None,
        "prefix_hit_rate": (
            round(sum(r.cached_tokens for r in records) / prompt_tokens, 4)
            if prompt_tokens
            else None
        ),
        "usage_reported": all(r.usage_reported for r in records),
    }


def figures_of(outcome: Outcome, errors: list[str]) -> dict:
    """The whole run's summary, each group's summary, the workload's own figures, errors."""
    figures: dict = {
        **summarize(outcome.records, outcome.wall_s),
        **outcome.figures,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
    }
    if len(outcome.groups) > 1:
        figures["groups"] = {
            name: summarize(records, outcome.wall_s) for name, records in outcome.groups.items()
        }
    idle, loaded = outcome.groups.get("probes_idle"), outcome.groups.get("probes_loaded")
    if idle and loaded:
        ratio = statistics.median(r.ttft_s for r in loaded) / statistics.median(
            r.ttft_s for r in idle
        )
        figures["probe_ttft_loaded_over_idle"] = round(ratio, 3)
    return figures


def ratios(ours: dict, theirs: dict) -> dict[str, float]:
    """ours / theirs for each compared figure both sides have (a ratio above 1 is better for
    ours where higher is better, worse where lower is better)."""
    return {
        name: round(ours[name] / theirs[name], 3)
        for name in COMPARED
        if isinstance(ours.get(name), int | float) and isinstance(theirs.get(name), int | float)
        if theirs[name]
    }
