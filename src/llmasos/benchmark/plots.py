"""The PNG of one `llmasos bench` run: throughput per server, and the distributions (empirical
CDFs) of time to first token and of latency, every server on the same axes."""

from __future__ import annotations

from pathlib import Path

from llmasos.benchmark.loadgen import RequestRecord
from llmasos.benchmark.report import pyplot


def _cdf(ax, values: list[float], label: str) -> None:
    ordered = sorted(values)
    if ordered:
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        ax.step(ordered, fractions, where="post", label=label)


def plot_run(
    path: Path, workload: str, figures: dict[str, dict], records: dict[str, list[RequestRecord]]
) -> None:
    """Three panels: output tokens/s (bars), TTFT CDF and latency CDF, one series per server."""
    plt = pyplot()
    fig, (bars, ttft, latency) = plt.subplots(1, 3, figsize=(13, 3.8))
    labels = list(figures)
    bars.bar(labels, [figures[s]["throughput_tokens_per_s"] or 0 for s in labels])
    bars.set_title("output tokens/s (higher is better)", fontsize=10)
    bars.tick_params(axis="x", labelsize=8)
    for side in labels:
        _cdf(ttft, [r.ttft_s for r in records[side]], side)
        _cdf(latency, [r.total_s for r in records[side]], side)
    for ax, name in ((ttft, "time to first token"), (latency, "request latency")):
        ax.set_title(f"{name} (CDF, left is better)", fontsize=10)
        ax.set_xlabel("seconds")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
    fig.suptitle(f"llmasos bench {workload}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
