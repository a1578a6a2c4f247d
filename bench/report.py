"""What every benchmark writes: a header (what, when, on what), the JSON, and a bar plot."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import textwrap
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def report_header(benchmark: str, description: str, model: Path) -> dict[str, object]:
    """The fields every benchmark result starts with: what, when, on what, with what."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "benchmark": benchmark,
        "description": " ".join(description.split()),
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit,
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()},
        "llama_cpp_python": version("llama-cpp-python"),
        "model": model.name,
    }


def arguments(doc: str, *, repeats: int | None = 3) -> argparse.ArgumentParser:
    """A benchmark's command line: --out (the results folder) and, if given, --repeats."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats)
    return parser


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {path}")


def bar_plot(
    path: Path,
    *,
    groups: list[str],
    series: dict[str, list[float]],
    title: str,
    log: bool = False,
) -> None:
    """Grouped bars: one group per x label, one bar per series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) + 2), 3.8))
    for k, (label, values) in enumerate(series.items()):
        ax.bar([i + width * k for i in range(len(groups))], values, width=width, label=label)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))], groups)
    if log:
        ax.set_yscale("log")
    ax.set_title(textwrap.fill(title, 80), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
