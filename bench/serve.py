"""Throughput and time to first token at concurrency 1, 4, 8 and 16: `llmasos serve` against
llama.cpp's `llama-server` (built from the same sdist), same model, threads, context per slot and
greedy settings, in the same run.

Each of C clients streams its requests one after another (a closed loop) to /v1/completions.
Throughput is completion tokens over wall time; TTFT runs from sending a request to its first
text chunk.

    .venv/bin/python bench/serve.py [--max-tokens 64] [--requests-per-client 2]
Writes bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from loadgen import closed_loop, summarize
from servers import llama_server, llmasos_server, report_header

CONCURRENCY = (1, 4, 8, 16)
SLOTS = 16
CONTEXT = 1024
THREADS = 2
SUBJECTS = [
    "the tides",
    "glaciers",
    "honey bees",
    "black holes",
    "the printing press",
    "tea",
    "volcanoes",
    "the violin",
    "coral reefs",
    "the telegraph",
    "bread",
    "owls",
    "the moon",
    "rivers",
    "salt",
    "lighthouses",
    "comets",
    "maple trees",
    "the compass",
    "silk",
    "clocks",
    "penguins",
    "ink",
    "deserts",
    "bridges",
    "whales",
    "paper",
    "thunder",
    "mushrooms",
    "castles",
    "rain",
    "copper",
]


def workload(concurrency: int, per_client: int, max_tokens: int) -> list[list[dict]]:
    n = 0
    clients = []
    for _ in range(concurrency):
        sequence = []
        for _ in range(per_client):
            subject = SUBJECTS[n % len(SUBJECTS)]
            n += 1
            sequence.append(
                {
                    "model": "default",
                    "prompt": f"Here are some surprising facts about {subject}:\n1.",
                    "max_tokens": max_tokens,
                    "temperature": 0,
                }
            )
        clients.append(sequence)
    return clients


def measure(url: str, model_name: str, concurrency: int, per_client: int, max_tokens: int) -> dict:
    bodies = workload(concurrency, per_client, max_tokens)
    for sequence in bodies:
        for body in sequence:
            body["model"] = model_name
    records, wall = asyncio.run(closed_loop(url, "/v1/completions", bodies))
    return summarize(records, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "serve.json"
    )
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)

    results: dict[int, dict[str, dict]] = {c: {} for c in CONCURRENCY}
    servers = {
        "llmasos": lambda: llmasos_server(slots=SLOTS, context=CONTEXT, threads=THREADS),
        "llama_server": lambda: llama_server(model, slots=SLOTS, context=CONTEXT, threads=THREADS),
    }
    names = {"llmasos": "gemma3-270m:q4_k_m", "llama_server": model.name}
    for name, start in servers.items():
        with start() as url:
            measure(url, names[name], 1, 1, 8)  # warm up
            for c in CONCURRENCY:
                per_client = max(args.requests_per_client, 8 // c)
                results[c][name] = measure(url, names[name], c, per_client, args.max_tokens)
                print(f"{name:12s} C={c:2d} {results[c][name]}", flush=True)

    rows = []
    for c in CONCURRENCY:
        ours, theirs = results[c]["llmasos"], results[c]["llama_server"]
        rows.append(
            {
                "concurrency": c,
                "llmasos": ours,
                "llama_server": theirs,
                "throughput_ratio": round(
                    ours["throughput_tokens_per_s"] / theirs["throughput_tokens_per_s"], 3
                ),
                "ttft_p50_ratio": round(ours["ttft_p50_s"] / theirs["ttft_p50_s"], 3),
            }
        )
    report = {
        **report_header("serve", __doc__.split("\n\n")[0], model),
        "settings": {
            "max_tokens": args.max_tokens,
            "greedy": True,
            "slots": SLOTS,
            "context_per_slot": CONTEXT,
            "threads": THREADS,
            "batch": 512,
            "llama_server_flags": "-np 16 -c 16384 -b 512 -ub 512 -t 2 -tb 2 (defaults otherwise:"
            " f16 KV cache, flash attention auto)",
            "llmasos_flags": "--num-slots 16 --context-length 1024 --max-batch-tokens 512 "
            "--threads 2 (q8_0 KV cache, flash attention)",
        },
        "results": rows,
        "targets": {"throughput_ratio_min": 1.0, "ttft_p50_ratio_max": 1.2},
        "met": {
            "throughput": all(r["throughput_ratio"] >= 1.0 for r in rows),
            "ttft_p50": all(r["ttft_p50_ratio"] <= 1.2 for r in rows),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for row in rows:
        print(
            f"C={row['concurrency']:2d} throughput x{row['throughput_ratio']} "
            f"TTFT p50 x{row['ttft_p50_ratio']}"
        )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
