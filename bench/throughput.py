"""Aggregate output tokens/s at 1, 4, 8 and 16 concurrent processes: the kernel, the bare engine
driven in a loop, and llama.cpp's own llama-batched-bench, in the same run.

Every side gets 32-token prompts and 64 output tokens per sequence, 2 threads, and counts its
prefill in the time. The bare engine loop is the kernel's own engine (the same batch filling and
the same greedy argmax sampling) with no scheduler, process table, streaming or text; its tokens
must equal the kernel's. llama-batched-bench decodes random tokens and samples nothing; it runs
twice: with our engine's settings (q8_0 KV, flash attention, a KV stream per sequence, no weight
repacking, no tiled matmul) and with llama.cpp's defaults (unified KV, repacking, tiled matmul;
q8_0 KV and flash attention as on our side). The kernel's step time is profiled: batch filling,
llama_decode, sampling, and the kernel's own Python.

    .venv/bin/python bench/throughput.py [--repeats 3]
Writes bench/results/throughput.json and .png.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from llmasos import Client
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.engine.base import BatchItem
from llmasos.engine.llamacpp import LlamaCppEngine, StepTimings
from llmasos.models.default import default_model_path
from llmasos.sampling import SamplingParams
from llmasos.settings import Settings
from reference import DEFAULTS_Q8, OURS, batched_bench
from report import arguments

CONCURRENCY = (1, 4, 8, 16)
NUM_SLOTS, CONTEXT, BATCH, THREADS = 16, 512, 512, 2
PROMPT_TOKENS, OUTPUT_TOKENS = 32, 64
TOPICS = [
    "the history of Rome", "how volcanoes form", "the rules of chess", "baking sourdough bread",
    "the life of bees", "how compilers work", "the water cycle", "learning a new language",
    "the first moon landing", "how vaccines work", "the architecture of cathedrals",
    "training for a marathon", "the stock market", "jazz improvisation", "deep sea creatures",
    "the invention of printing", "the migration of birds", "how bridges stand",
]  # fmt: skip


def prompts_of_exact_length(engine: LlamaCppEngine, n: int) -> list[str]:
    """One prompt per topic whose tokenisation is exactly `n` tokens (start token included)."""
    prompts = []
    for topic in TOPICS:
        words = (
            f"Here is a long, careful and clear explanation of {topic}, written for a curious "
            "reader who knows nothing yet but wants to understand every step of it in detail:"
        ).split()
        for k in range(len(words), 0, -1):
            text = " ".join(words[:k])
            if len(engine.tokenize(text)) == n:
                prompts.append(text)
                break
    if len(prompts) < max(CONCURRENCY):
        raise SystemExit(f"only {len(prompts)} prompts of exactly {n} tokens")
    return prompts[: max(CONCURRENCY)]


def run_kernel(client: Client, prompts: list[str]) -> tuple[list[list[int]], float]:
    started = time.perf_counter()
    with client.kernel.paused():
        handles = [client.spawn(p, max_tokens=OUTPUT_TOKENS, temperature=0) for p in prompts]
    outputs = [h.wait().token_ids for h in handles]
    return outputs, time.perf_counter() - started


def run_engine_loop(engine: LlamaCppEngine, prompts: list[str]) -> tuple[list[list[int]], float]:
    """The bare engine: one step prefills every prompt, then one step per output token."""
    started = time.perf_counter()
    tokens = [engine.tokenize(p) for p in prompts]
    samplers = [engine.new_sampler(SamplingParams(temperature=0), 0) for _ in prompts]
    first = engine.step([BatchItem(i, t, 0, samplers[i]) for i, t in enumerate(tokens)])
    outputs = [[token] for token in first]
    for _ in range(OUTPUT_TOKENS - 1):
        items = [
            BatchItem(i, out[-1:], len(tokens[i]) + len(out) - 1, samplers[i])
            for i, out in enumerate(outputs)
        ]
        for out, token in zip(outputs, engine.step(items), strict=True):
            out.append(token)
    elapsed = time.perf_counter() - started
    for i, sampler in enumerate(samplers):
        sampler.close()
        engine.release(i)
    return outputs, elapsed


def profile(timings: StepTimings, wall_s: float) -> dict[str, float]:
    """Shares of the kernel's wall time."""
    other = wall_s - timings.fill_s - timings.decode_s - timings.sample_s
    return {
        "llama_decode": round(timings.decode_s / wall_s, 4),
        "sampling": round(timings.sample_s / wall_s, 4),
        "batch_filling": round(timings.fill_s / wall_s, 4),
        "kernel_python": round(other / wall_s, 4),
        "ms_per_step": round(1000 * wall_s / max(timings.steps, 1), 2),
    }


REFERENCES = {"batched_bench_ours": OURS, "batched_bench_defaults": DEFAULTS_Q8}


def one_round(client: Client, loop: LlamaCppEngine, prompts: list[str], model: Path) -> dict:
    """Every side once, at every concurrency: {side: {n: seconds or tokens/s}}."""
    round_: dict[str, dict] = {"kernel": {}, "engine_loop": {}, "profile": {}}
    engine: LlamaCppEngine = client.kernel.engine  # type: ignore[assignment]
    for key, settings in REFERENCES.items():
        rows = batched_bench(
            model,
            settings,
            prompt_tokens=PROMPT_TOKENS,
            output_tokens=OUTPUT_TOKENS,
            batch_sizes=list(CONCURRENCY),
            threads=THREADS,
            context_per_sequence=CONTEXT,
        )
        round_[key] = {n: rows[n]["output_tokens_per_s"] for n in CONCURRENCY}
    for n in CONCURRENCY:
        engine.timings = StepTimings()
        kernel_out, round_["kernel"][n] = run_kernel(client, prompts[:n])
        round_["profile"][n] = profile(engine.timings, round_["kernel"][n])
        loop_out, round_["engine_loop"][n] = run_engine_loop(loop, prompts[:n])
        if kernel_out != loop_out:
            raise SystemExit(f"concurrency {n}: the kernel and the engine loop disagree")
        if any(len(out) != OUTPUT_TOKENS for out in kernel_out):
            raise SystemExit(f"concurrency {n}: a process stopped before {OUTPUT_TOKENS} tokens")
    print({k: v for k, v in round_.items() if k != "profile"}, flush=True)
    return round_


def summarize(rounds: list[dict]) -> list[dict]:
    """Medians over the rounds, and the kernel's ratio to each other side."""
    rows = []
    for n in CONCURRENCY:
        tokens = n * OUTPUT_TOKENS
        row: dict = {"concurrency": n}
        for side in ("kernel", "engine_loop"):
            seconds = [r[side][n] for r in rounds]
            row[f"{side}_tokens_per_s"] = round(tokens / statistics.median(seconds), 2)
            row[f"{side}_seconds"] = [round(s, 3) for s in seconds]
        for key in REFERENCES:
            rates = [r[key][n] for r in rounds]
            row[f"{key}_tokens_per_s"] = round(statistics.median(rates), 2)
            row[f"{key}_rounds"] = [round(v, 2) for v in rates]
        for side in ("engine_loop", *REFERENCES):
            row[f"kernel_vs_{side}"] = round(
                row["kernel_tokens_per_s"] / row[f"{side}_tokens_per_s"], 3
            )
        row["kernel_profile"] = rounds[-1]["profile"][n]
        rows.append(row)
    return rows


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    sizes = {"num_slots": NUM_SLOTS, "context_length": CONTEXT, "max_batch_tokens": BATCH}
    loop = LlamaCppEngine(model, model_name="loop", n_threads=THREADS, **sizes)
    prompts = prompts_of_exact_length(loop, PROMPT_TOKENS)
    # No prefix reuse: the same batches as the engine loop (the prompts share their first words).
    client = Client(
        model=str(model), max_running=NUM_SLOTS, n_threads=THREADS, min_prefix_tokens=10**6, **sizes
    )
    try:  # rounds interleave every side, so drift on a shared machine hits them all alike
        rounds = [one_round(client, loop, prompts, model) for _ in range(args.repeats)]
    finally:
        client.close()
        loop.close()
    names = {key: settings.name for key, settings in REFERENCES.items()}
    write_results(args.out, summarize(rounds), names, model, args.repeats)


def write_results(
    out: Path, rows: list[dict], names: dict[str, str], model: Path, repeats: int
) -> None:
    scaling = {
        side: round(rows[-1][f"{side}_tokens_per_s"] / rows[0][f"{side}_tokens_per_s"], 3)
        for side in ("kernel", "engine_loop", "batched_bench_ours", "batched_bench_defaults")
    }
    report = {
        **report_header("throughput", __doc__.split("\n\n")[0], model),
        "settings": {
            "prompt_tokens": PROMPT_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
            "threads": THREADS,
            "num_slots": NUM_SLOTS,
            "max_batch_tokens": BATCH,
            "repeats": repeats,
            "statistic": "median over rounds that interleave every side; prefill included",
            "reference": names,
        },
        "results": rows,
        "scaling_16_vs_1": scaling,
        "targets": {
            "kernel_vs_engine_loop_min": 0.9,
            "kernel_vs_batched_bench_ours_min": 0.95,
            "kernel_vs_batched_bench_defaults_min": 0.95,
            "scaling_16_vs_1_min": 3.0,
        },
        "met": {
            key: all(
                r[key] >= 0.9 if key == "kernel_vs_engine_loop" else r[key] >= 0.95 for r in rows
            )
            for key in (
                "kernel_vs_engine_loop",
                "kernel_vs_batched_bench_ours",
                "kernel_vs_batched_bench_defaults",
            )
        }
        | {"scaling_16_vs_1": scaling["kernel"] >= 3.0},
    }
    write_report(out / "throughput.json", report)
    bar_plot(
        out / "throughput.png",
        groups=[f"{r['concurrency']} process{'es' if r['concurrency'] > 1 else ''}" for r in rows],
        series={
            "LLMasOS kernel": [r["kernel_tokens_per_s"] for r in rows],
            "bare engine loop": [r["engine_loop_tokens_per_s"] for r in rows],
            "llama-batched-bench, our settings": [
                r["batched_bench_ours_tokens_per_s"] for r in rows
            ],
            "llama-batched-bench, defaults": [
                r["batched_bench_defaults_tokens_per_s"] for r in rows
            ],
        },
        title="Output tokens/s, prefill included (higher is better)",
    )


if __name__ == "__main__":
    main()
