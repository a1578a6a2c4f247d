"""Prompt processing (prefill) speed by KV cache type and matmul path: our engine recomputing a
512- and a 2048-token context, and llama.cpp's own llama-bench on the same model, in the same run.

Our engine runs with q8_0 or f16 K/V (flash attention on, a KV stream per slot, no repacking)
and with GGML_CPU_TILED_MM off (its setting) or on; each configuration runs in a fresh process,
since ggml reads that switch once. llama-bench measures pp512 and pp2048 with the same four
combinations, with weight repacking as our engine (off) and as llama.cpp's default (on). Memory:
KV bytes per token of each cache type for this model.

    .venv/bin/python bench/prefill.py [--repeats 3]
Writes bench/results/prefill.json and .png.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from reference import LlamaSettings, llama_bench_prefill
from report import arguments

LENGTHS = (512, 2048)
BATCH, THREADS = 512, 2
KV_TYPES = ("q8_0", "f16")
TEXT = (
    "An operating system multiplexes a processor, memory and storage among programs. "
    "It schedules them, protects them from each other and keeps their state when they wait. "
)


def worker(kv_type: str, tiled: bool, repeats: int) -> None:
    """In a fresh process: time our engine's prefill; print {length: tokens/s} as JSON."""
    from llmasos.engine.base import BatchItem
    from llmasos.engine.llamacpp import LlamaCppEngine
    from llmasos.sampling import SamplingParams

    os.environ["GGML_CPU_TILED_MM"] = "1" if tiled else "0"  # after the engine's own default
    model = default_model_path(Settings.from_environment().home)
    engine = LlamaCppEngine(
        model,
        model_name="bench",
        num_slots=1,
        context_length=max(LENGTHS),
        max_batch_tokens=BATCH,
        n_threads=THREADS,
        kv_cache_type=kv_type,
    )
    tokens = engine.tokenize(TEXT * 200)
    sampler = engine.new_sampler(SamplingParams(temperature=0), 0)
    speeds = {}
    for n in LENGTHS:
        times = []
        for _ in range(repeats):
            engine.release(0)
            started = time.perf_counter()
            for start in range(0, n, BATCH):
                chunk = tokens[start : min(n, start + BATCH)]
                last = start + len(chunk) == n
                engine.step([BatchItem(0, chunk, start, sampler if last else None)])
            times.append(time.perf_counter() - started)
        speeds[n] = round(n / statistics.median(times), 1)
    engine.close()
    print(json.dumps(speeds))


def ours(kv_type: str, tiled: bool, repeats: int) -> dict[int, float]:
    command = [sys.executable, __file__, "--worker", kv_type, str(int(tiled)), str(repeats)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return {int(k): v for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kv_type, tiled, repeats = args.worker
        worker(kv_type, tiled == "1", int(repeats))
        return
    model = default_model_path(Settings.from_environment().home)
    rows = []
    for kv_type, tiled in itertools.product(KV_TYPES, (False, True)):
        row = {"kv_type": kv_type, "tiled_mm": tiled, "engine": ours(kv_type, tiled, args.repeats)}
        for repack in (False, True):
            settings = LlamaSettings("", kv_type=kv_type, repack=repack, tiled_mm=tiled)
            speeds = llama_bench_prefill(
                model, settings, prompt_tokens=list(LENGTHS), threads=THREADS, repeats=args.repeats
            )
            row[f"llama_bench_repack_{'on' if repack else 'off'}"] = {
                n: round(v, 1) for n, v in speeds.items()
            }
        rows.append(row)
        print(row, flush=True)
    write_results(args.out, rows, model, args.repeats)


def kv_bytes_per_token(model: Path) -> dict[str, int]:
    from llmasos.models.gguf_info import read_gguf_info

    q8_0 = read_gguf_info(model).kv_bytes_per_token  # 34 bytes per 32 values
    return {"q8_0": q8_0, "f16": q8_0 * 64 // 34}


def write_results(out: Path, rows: list[dict], model: Path, repeats: int) -> None:
    ours_row = next(r for r in rows if r["kv_type"] == "q8_0" and not r["tiled_mm"])
    report = {
        **report_header("prefill", __doc__.split("\n\n")[0], model),
        "settings": {
            "lengths": LENGTHS,
            "batch": BATCH,
            "threads": THREADS,
            "repeats": repeats,
            "flash_attention": True,
            "statistic": "median tokens/s",
        },
        "results": rows,
        "engine_vs_its_default": {
            f"{r['kv_type']}, tiled {'on' if r['tiled_mm'] else 'off'}": {
                n: round(r["engine"][n] / ours_row["engine"][n], 3) for n in LENGTHS
            }
            for r in rows
        },
        "kv_bytes_per_token": kv_bytes_per_token(model),
    }
    write_report(out / "prefill.json", report)
    labels = [f"{r['kv_type']}, tiled {'on' if r['tiled_mm'] else 'off'}" for r in rows]
    bar_plot(
        out / "prefill.png",
        groups=labels,
        series={
            "our engine, 2048": [r["engine"][2048] for r in rows],
            "llama-bench pp2048, no repack": [r["llama_bench_repack_off"][2048] for r in rows],
            "llama-bench pp2048, repack": [r["llama_bench_repack_on"][2048] for r in rows],
        },
        title="Prefill tokens/s by KV type and matmul path (higher is better)",
    )


if __name__ == "__main__":
    main()
