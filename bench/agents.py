"""Agents sharing a long system prompt: LLMasOS against llama.cpp's llama-server, same run.

Agent workload: 16 agents start together. Each has the same ~1500-token system prompt and its
own task, and runs 3 turns of 64 output tokens; each turn appends the reply and a follow-up
question to the agent's own conversation. Control workload: 16 clients, 3 requests each, every
prompt unique from its first token (nothing to share).

llama-server runs with -np 16, a unified KV cache and its prompt cache on (its defaults). Both
servers get the same model, threads, context per slot, batch size and greedy settings, and the
same raw prompts through /v1/completions.

    .venv/bin/python bench/agents.py
Writes bench/results/agents.json and bench/results/agents.png.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx

from llmasos.benchmark.figures import summarize
from llmasos.benchmark.loadgen import RequestRecord, new_client, stream_completion
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import RULES
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from report import arguments
from servers import Q8_0_KV, llama_server

AGENTS = 16
TURNS = 3
MAX_TOKENS = 64
CONTEXT = 2048
THREADS = 2
TOPICS = [
    "photosynthesis",
    "compound interest",
    "the French revolution",
    "TCP handshakes",
    "plate tectonics",
    "vaccination",
    "sorting algorithms",
    "the water cycle",
    "inflation",
    "black holes",
    "the immune system",
    "supply chains",
    "climate feedback loops",
    "public key cryptography",
    "the Roman republic",
    "neural networks",
]
FOLLOW_UPS = ["Can you give a simple example?", "What is a common misconception about it?"]


def system_prompt() -> str:
    lines = ["You are a patient tutor in a study group. Follow these house rules."]
    for i in range(56):
        lines.append(f"Rule {i + 1}. {RULES[i % len(RULES)]} This applies to topic area {i}.")
    return "\n".join(lines) + "\n\n"


async def agent(client: httpx.AsyncClient, model: str, task: str) -> list[RequestRecord]:
    prompt = f"{system_prompt()}User: Explain {task} to me.\nAssistant:"
    records = []
    for turn in range(TURNS):
        body = {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0}
        record = await stream_completion(client, "/v1/completions", body)
        records.append(record)
        if turn < TURNS - 1:
            prompt += f"{record.text}\nUser: {FOLLOW_UPS[turn]}\nAssistant:"
    return records


async def control_client(client: httpx.AsyncClient, model: str, seed: int) -> list[RequestRecord]:
    rng = random.Random(seed)
    words = [t.split()[0] for t in TOPICS] + ["apple", "river", "stone", "music", "garden"]
    records = []
    for _ in range(TURNS):
        prompt = f"{rng.randrange(10**9)} " + " ".join(rng.choice(words) for _ in range(90))
        body = {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0}
        records.append(await stream_completion(client, "/v1/completions", body))
    return records


async def run_workload(url: str, model: str, workload: str) -> dict:
    async with new_client(url) as client:
        started = time.perf_counter()
        if workload == "agents":
            runs = [agent(client, model, topic) for topic in TOPICS[:AGENTS]]
        else:
            runs = [control_client(client, model, seed) for seed in range(AGENTS)]
        per_client = await asyncio.gather(*runs)
        makespan = time.perf_counter() - started
    records = [r for client_records in per_client for r in client_records]
    summary = summarize(records, makespan)
    summary["makespan_s"] = summary.pop("wall_s")
    return summary


SERVERS = ("llmasos", "llama_server_q8_0", "llama_server_f16")


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    sizes = {"slots": AGENTS, "context": CONTEXT, "threads": THREADS}
    q8 = Q8_0_KV
    servers = {
        "llmasos": (lambda: llmasos_server(**sizes), "gemma3-270m:q4_k_m"),
        "llama_server_q8_0": (
            lambda: llama_server(model, **sizes, extra=("-kvu", *q8)),
            model.name,
        ),
        "llama_server_f16": (lambda: llama_server(model, **sizes, extra=("-kvu",)), model.name),
    }
    results: dict[str, dict[str, dict]] = {"agents": {}, "control": {}}
    for name, (start, model_name) in servers.items():
        with start() as url:
            for workload in ("agents", "control"):
                results[workload][name] = asyncio.run(run_workload(url, model_name, workload))
                print(f"{name:18s} {workload:8s} {results[workload][name]}", flush=True)
    write_results(args.out, results, model)


def write_results(out: Path, results: dict[str, dict[str, dict]], model: Path) -> None:
    ratios = {
        f"{workload}_vs_{other}": round(
            results[workload]["llmasos"]["throughput_tokens_per_s"]
            / results[workload][other]["throughput_tokens_per_s"],
            3,
        )
        for workload in results
        for other in SERVERS[1:]
    }
    minimum = {"agents": 2.0, "control": 0.95}
    report = {
        **report_header("agents", __doc__.split("\n\n")[1], model),
        "settings": {
            "agents": AGENTS,
            "turns": TURNS,
            "max_tokens": MAX_TOKENS,
            "greedy": True,
            "context_per_slot": CONTEXT,
            "threads": THREADS,
            "batch": 512,
            "llama_server_flags": f"-np {AGENTS} -kvu -c {AGENTS * CONTEXT} -b 512 -ub 512 "
            f"-t {THREADS} -tb {THREADS} (prompt cache on by default); q8_0: -ctk q8_0 "
            "-ctv q8_0 -fa on; f16: its default K/V",
            "llmasos_flags": f"--num-slots {AGENTS} --context-length {CONTEXT} "
            f"--max-batch-tokens 512 --threads {THREADS} (q8_0 K/V, flash attention)",
        },
        "results": results,
        "throughput_ratio": ratios,
        "targets": {"agents_throughput_ratio_min": 2.0, "control_throughput_ratio_min": 0.95},
        "met": {key: value >= minimum[key.split("_vs_")[0]] for key, value in ratios.items()},
    }
    write_report(out / "agents.json", report)
    for metric, label in (
        ("throughput_tokens_per_s", "output tokens/s (higher is better)"),
        ("ttft_p50_s", "TTFT p50, s (lower is better)"),
    ):
        suffix = "" if metric.startswith("throughput") else "_ttft"
        bar_plot(
            out / f"agents{suffix}.png",
            groups=list(results),
            series={s: [results[w][s][metric] for w in results] for s in SERVERS},
            title=f"{AGENTS} agents x {TURNS} turns, shared ~1500-token system prompt: {label}",
        )


if __name__ == "__main__":
    main()
