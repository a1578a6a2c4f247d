"""Urgent time to first token under load: how long a high-priority request waits for its first
token while 12 clients saturate the server, over how long it waits on an idle server.
`llmasos serve --policy priority` (the probe sent with priority 10) against llama.cpp's
`llama-server` (built from the same sdist, which has no priorities), same model, threads, slots
and context, in the same run.

For each server: PROBES probe requests alone (the idle TTFT, median), then 12 closed-loop
clients stream requests on random prompts without pause while the same number of probes go out
one at a time, a random 0.3-1.2 s apart. Every prompt starts with its own random words (no
prefix-cache hit), and both servers get the same prompts in the same order. Probing starts
12 s in, after the first burst in which all 12 prompts arrive at once. The figure is the loaded
median TTFT over the idle one; the worst single probe is reported too, and the load's own
output rate while the probes ran (the price of putting the probes first).

    .venv/bin/python bench/urgent.py [--probes 12]
Writes bench/results/urgent.json and .png.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from llmasos.benchmark.loadgen import new_client, stream_completion
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import random_prompts
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from report import arguments
from servers import Q8_0_KV, llama_server

SATURATING_CLIENTS = 12
SLOTS, CONTEXT, THREADS = 16, 1024, 2
LOAD_MAX_TOKENS = 96
PROBE_MAX_TOKENS = 4
WARMUP_S = 12.0  # past the first burst, when all 12 prompts arrive at once
TARGET, MOONSHOT = 2.0, 1.5


async def probes(url: str, model: str, prompts: list[str], extra: dict, gap: bool) -> list[float]:
    """TTFT of each probe, sent one after another (`gap`: with a random pause between)."""
    rng = random.Random(3)
    ttfts = []
    async with new_client(url) as client:
        for prompt in prompts:
            if gap:
                await asyncio.sleep(rng.uniform(0.3, 1.2))
            body = {"model": model, "prompt": prompt, "max_tokens": PROBE_MAX_TOKENS, **extra}
            record = await stream_completion(client, "/v1/completions", {**body, "temperature": 0})
            ttfts.append(record.ttft_s)
    return ttfts


@dataclass
class LoadCounter:
    """Text chunks the saturating clients receive while counting is on."""

    counting: bool = False
    chunks: int = 0

    def __call__(self) -> None:
        if self.counting:
            self.chunks += 1


async def under_load(
    url: str, model: str, load_prompts: list[str], probe_prompts: list[str], extra: dict
) -> tuple[list[float], float]:
    """Probe TTFTs while SATURATING_CLIENTS clients keep the server busy; also the rate of
    text chunks (about one token each) the load received while the probes ran."""
    stop = asyncio.Event()
    feed = iter(load_prompts)
    counter = LoadCounter()

    async def saturate() -> None:
        body = {"model": model, "max_tokens": LOAD_MAX_TOKENS, "temperature": 0}
        async with new_client(url) as client:
            while not stop.is_set():
                request = {**body, "prompt": next(feed)}
                await stream_completion(client, "/v1/completions", request, counter)

    load = [asyncio.create_task(saturate()) for _ in range(SATURATING_CLIENTS)]
    await asyncio.sleep(WARMUP_S)
    counter.counting, started = True, time.perf_counter()
    ttfts = await probes(url, model, probe_prompts, extra, gap=True)
    counter.counting, window = False, time.perf_counter() - started
    stop.set()
    await asyncio.gather(*load)
    return ttfts, counter.chunks / window


def measure(
    start: Callable[[], AbstractContextManager[str]], model: str, extra: dict, count: int
) -> dict:
    prompts = random_prompts(4000, seed=11)  # the same sequence for every server
    idle_prompts, loaded_prompts, load_prompts = (
        prompts[:count],
        prompts[count : 2 * count],
        prompts[2 * count :],
    )
    with start() as url:
        asyncio.run(probes(url, model, prompts[-2:], extra, gap=False))  # warm-up
        idle = asyncio.run(probes(url, model, idle_prompts, extra, gap=False))
        loaded, load_rate = asyncio.run(under_load(url, model, load_prompts, loaded_prompts, extra))
    row = {
        "idle_ttft_s": [round(t, 4) for t in idle],
        "loaded_ttft_s": [round(t, 4) for t in loaded],
        "idle_ttft_p50_s": round(statistics.median(idle), 4),
        "loaded_ttft_p50_s": round(statistics.median(loaded), 4),
        "worst_loaded_ttft_s": round(max(loaded), 4),
        "load_tokens_per_s_during_probes": round(load_rate, 2),
    }
    row["loaded_over_idle_p50"] = round(row["loaded_ttft_p50_s"] / row["idle_ttft_p50_s"], 3)
    print(f"{model:24s} {row}", flush=True)
    return row


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--probes", type=int, default=12)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    sizes = {"slots": SLOTS, "context": CONTEXT, "threads": THREADS}
    q8 = Q8_0_KV
    ours = lambda: llmasos_server(**sizes, extra=("--policy", "priority"))  # noqa: E731
    results = {
        "llmasos": measure(ours, "gemma3-270m:q4_k_m", {"priority": 10}, args.probes),
        "llama_server_q8_0": measure(
            lambda: llama_server(model, **sizes, extra=q8), model.name, {}, args.probes
        ),
    }
    ratio = results["llmasos"]["loaded_over_idle_p50"]
    report = {
        **report_header("urgent", __doc__.split("\n\n")[0], model),
        "settings": {
            "saturating_clients": SATURATING_CLIENTS,
            "load_max_tokens": LOAD_MAX_TOKENS,
            "probe_max_tokens": PROBE_MAX_TOKENS,
            "probes": args.probes,
            "slots": SLOTS,
            "context_per_slot": CONTEXT,
            "threads": THREADS,
            "greedy": True,
            "prompts": "unique random words (about 90 tokens), the same sequence for each server",
            "llmasos_flags": f"--policy priority --num-slots {SLOTS} --context-length {CONTEXT} "
            f"--max-batch-tokens 512 --threads {THREADS}; probes carry priority 10",
            "llama_server_flags": f"-np {SLOTS} -c {SLOTS * CONTEXT} -b 512 -ub 512 "
            f"-t {THREADS} -tb {THREADS} -ctk q8_0 -ctv q8_0 -fa on",
        },
        "results": results,
        "targets": {"loaded_over_idle_p50_max": TARGET, "moonshot": MOONSHOT},
        "met": {"target": ratio <= TARGET, "moonshot": ratio <= MOONSHOT},
    }
    write_report(args.out / "urgent.json", report)
    bar_plot(
        args.out / "urgent.png",
        groups=["idle TTFT p50", "TTFT p50 under 12 clients", "worst under load"],
        series={
            name: [r["idle_ttft_p50_s"], r["loaded_ttft_p50_s"], r["worst_loaded_ttft_s"]]
            for name, r in results.items()
        },
        title="Time to first token of a probe request, seconds (lower is better)",
    )


if __name__ == "__main__":
    main()
