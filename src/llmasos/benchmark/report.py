"""What every benchmark writes: a header (what, when, on what), the JSON, and a bar plot.

`bench/` scripts and `llmasos bench` share it, so their results have one schema.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import textwrap
import time
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).resolve().parents[3]  # the checkout, when installed from one


def _commit() -> str:
    """The checkout's short commit, or "" when the package is not installed from a checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=SOURCE,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def _cpu() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(names, platform.processor() or "unknown")


def report_header(benchmark: str, description: str, model: Path | str) -> dict[str, object]:
    """The fields every benchmark result starts with: what, when, on what, with what."""
    return {
        "benchmark": benchmark,
        "description": " ".join(description.split()),
        "date": time.strftime("%Y-%m-%d"),
        "commit": _commit(),
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version()},
        "llama_cpp_python": version("llama-cpp-python"),
        "model": Path(model).name if isinstance(model, Path) else model,
    }


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"-> {path}")


def pyplot() -> ModuleType:
    """matplotlib's pyplot, drawing to files only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_plot(
    path: Path,
    *,
    groups: list[str],
    series: dict[str, list[float]],
    title: str,
    log: bool = False,
) -> None:
    """Grouped bars: one group per x label, one bar per series."""
    plt = pyplot()
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
