"""`llmasos bench` on its five workloads at full size: the local embedded kernel against
llama.cpp's own `llama-server` (built from the same sdist) through `--compare`, in the same run.

llama-server gets the local server's sizes: as many slots (16; 8 for swap, one per long
generation), 2048 tokens of context per slot, q8_0 K/V with flash attention, 2 threads (the local
server's default on this machine's 2 cores).
It has no priorities: the priority and swap workloads show what a server without them does.

    .venv/bin/python bench/bench_cli.py [--workloads throughput serve agents priority swap]
Writes bench/results/bench_WORKLOAD.json and .png for each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llmasos.benchmark.workloads import SIZES
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from report import arguments
from servers import Q8_0_KV, llama_server


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--workloads", nargs="+", default=list(SIZES))
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    exe = Path(sys.executable).parent / "llmasos"
    for workload in args.workloads:
        slots = SIZES[workload][0].concurrency if workload == "swap" else 16
        with llama_server(model, slots=slots, context=2048, threads=2, extra=Q8_0_KV) as theirs:
            command = [
                str(exe),
                "bench",
                workload,
                "--compare",
                theirs,
                "--compare-name",
                "llama-server",
                "--json",
                str(args.out / f"bench_{workload}.json"),
                "--plot",
                str(args.out / f"bench_{workload}.png"),
            ]
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
