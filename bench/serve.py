"""Throughput and time to first token at concurrency 1, 4, 8 and 16: `llmasos serve` against
llama.cpp's `llama-server` (built from the same sdist), same model, threads, context per slot and
greedy settings, in the same run, on random prompts that share no prefix.

Each of C clients streams its requests one after another (a closed loop) to /v1/completions.
Every prompt starts with its own random words, and every server gets the same prompts in the same
order, so no server meets a prefix-cache hit another does not. llama-server runs twice: with
q8_0 K/V and flash attention (our engine's cache type) and with its defaults (f16 K/V).
Throughput is completion tokens over wall time; TTFT runs from sending a request to its first
text chunk.

    .venv/bin/python bench/serve.py [--max-tokens 64] [--requests-per-client 2]
Writes bench/results/serve.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from llmasos.benchmark.figures import summarize
from llmasos.benchmark.loadgen import closed_loop
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import random_prompts
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from report import arguments
from servers import Q8_0_KV, llama_server

CONCURRENCY = (1, 4, 8, 16)
SLOTS, CONTEXT, THREADS = 16, 1024, 2


def workload(
    prompts: Iterator[str], model: str, concurrency: int, per_client: int, max_tokens: int
) -> list[list[dict]]:
    body = {"model": model, "max_tokens": max_tokens, "temperature": 0}
    return [
        [{**body, "prompt": next(prompts)} for _ in range(per_client)] for _ in range(concurrency)
    ]


def measure_server(
    start: Callable[[], AbstractContextManager[str]], model: str, args: argparse.Namespace
) -> dict[int, dict]:
    prompts = iter(random_prompts(1000))  # the same sequence for every server
    results = {}
    with start() as url:
        asyncio.run(closed_loop(url, "/v1/completions", workload(prompts, model, 1, 1, 8)))
        for c in CONCURRENCY:
            per_client = max(args.requests_per_client, 8 // c)
            bodies = workload(prompts, model, c, per_client, args.max_tokens)
            records, wall = asyncio.run(closed_loop(url, "/v1/completions", bodies))
            results[c] = summarize(records, wall)
            print(f"{model:24s} C={c:2d} {results[c]}", flush=True)
    return results


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests-per-client", type=int, default=2)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    sizes = {"slots": SLOTS, "context": CONTEXT, "threads": THREADS}
    q8 = Q8_0_KV
    servers = {
        "llmasos": (lambda: llmasos_server(**sizes), "gemma3-270m:q4_k_m"),
        "llama_server_q8_0": (lambda: llama_server(model, **sizes, extra=q8), model.name),
        "llama_server_f16": (lambda: llama_server(model, **sizes), model.name),
    }
    results = {name: measure_server(start, name_, args) for name, (start, name_) in servers.items()}
    write_results(args, results, model)


def met_of(rows: list[dict]) -> dict[str, bool]:
    """The targets: throughput >= 1.0 and TTFT p50 <= 1.2 at every concurrency, and (the
    structured-output issue's) throughput >= 1.0 and TTFT p50 <= 1.0 at 8 clients."""
    met = {
        f"{metric}_vs_{other}": all(
            r[f"{metric}_vs_{other}"] >= 1.0
            if metric == "throughput"
            else r[f"{metric}_vs_{other}"] <= 1.2
            for r in rows
        )
        for metric in ("throughput", "ttft_p50")
        for other in ("llama_server_q8_0", "llama_server_f16")
    }
    at_8 = next(r for r in rows if r["concurrency"] == 8)
    for other in ("llama_server_q8_0", "llama_server_f16"):
        met[f"c8_throughput_vs_{other}"] = at_8[f"throughput_vs_{other}"] >= 1.0
        met[f"c8_ttft_p50_vs_{other}"] = at_8[f"ttft_p50_vs_{other}"] <= 1.0
    return met


def write_results(
    args: argparse.Namespace, results: dict[str, dict[int, dict]], model: Path
) -> None:
    rows = []
    for c in CONCURRENCY:
        row: dict = {"concurrency": c, **{name: results[name][c] for name in results}}
        ours = results["llmasos"][c]
        for other in ("llama_server_q8_0", "llama_server_f16"):
            theirs = results[other][c]
            row[f"throughput_vs_{other}"] = round(
                ours["throughput_tokens_per_s"] / theirs["throughput_tokens_per_s"], 3
            )
            row[f"ttft_p50_vs_{other}"] = round(ours["ttft_p50_s"] / theirs["ttft_p50_s"], 3)
        rows.append(row)
    met = met_of(rows)
    report = {
        **report_header("serve", __doc__.split("\n\n")[0], model),
        "settings": {
            "max_tokens": args.max_tokens,
            "greedy": True,
            "slots": SLOTS,
            "context_per_slot": CONTEXT,
            "threads": THREADS,
            "batch": 512,
            "prompts": "unique random words (about 90 tokens), the same sequence for every server",
            "llama_server_q8_0_flags": f"-np {SLOTS} -c {SLOTS * CONTEXT} -b 512 -ub 512 "
            f"-t {THREADS} -tb {THREADS} -ctk q8_0 -ctv q8_0 -fa on",
            "llama_server_f16_flags": f"-np {SLOTS} -c {SLOTS * CONTEXT} -b 512 -ub 512 "
            f"-t {THREADS} -tb {THREADS} (defaults: f16 K/V, flash attention auto)",
            "llmasos_flags": f"--num-slots {SLOTS} --context-length {CONTEXT} "
            f"--max-batch-tokens 512 --threads {THREADS} (q8_0 K/V, flash attention)",
        },
        "results": rows,
        "targets": {
            "throughput_ratio_min": 1.0,
            "ttft_p50_ratio_max": 1.2,
            "c8_throughput_ratio_min": 1.0,
            "c8_ttft_p50_ratio_max": 1.0,
        },
        "met": met,
    }
    write_report(args.out / "serve.json", report)
    bar_plot(
        args.out / "serve.png",
        groups=[f"C={c}" for c in CONCURRENCY],
        series={
            name: [results[name][c]["throughput_tokens_per_s"] for c in CONCURRENCY]
            for name in results
        },
        title="Output tokens/s on random prompts (higher is better)",
    )


if __name__ == "__main__":
    main()
