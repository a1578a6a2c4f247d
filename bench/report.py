"""A benchmark script's command line; what it writes comes from llmasos.benchmark.report."""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def arguments(doc: str, *, repeats: int | None = 3) -> argparse.ArgumentParser:
    """A benchmark's command line: --out (the results folder) and, if given, --repeats."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    if repeats is not None:
        parser.add_argument("--repeats", type=int, default=repeats)
    return parser
