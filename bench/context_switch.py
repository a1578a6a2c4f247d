"""The cost of a context switch: swapping a process's KV out and back in (through RAM and
through disk) against recomputing its context from the tokens, at 512, 2048 and 4096 tokens,
on the engine the kernel runs (same settings), in the same run.

Swap out = snapshot the slot and store it in swap space; swap in = take it back and restore it
into an empty slot (a disk entry is read back from its file). Recompute = prefill the same
tokens into an empty slot in chunks of max_batch_tokens. Each is timed `--repeats` times; the
median counts. The restored slot must then decode the same next token as the recomputed one.

    .venv/bin/python bench/context_switch.py [--repeats 3]
Writes bench/results/context_switch.json and .png.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.engine.base import BatchItem
from llmasos.engine.llamacpp import LlamaCppEngine
from llmasos.kernel.swap import SwapSpace
from llmasos.models.default import default_model_path
from llmasos.sampling import SamplingParams
from llmasos.settings import Settings
from report import arguments

LENGTHS = (512, 2048, 4096)
BATCH = 512
TEXT = (
    "An operating system multiplexes a processor, memory and storage among programs. "
    "It schedules them, protects them from each other and keeps their state when they wait. "
)


def median_s(action: Callable[[], object], repeats: int, reset: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        reset()
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def prefill(engine: LlamaCppEngine, slot: int, tokens: list[int]) -> int | None:
    """Compute `tokens` into `slot`; the greedy token after them."""
    sampler = engine.new_sampler(SamplingParams(temperature=0), 0)
    token = None
    for start in range(0, len(tokens), BATCH):
        chunk = tokens[start : start + BATCH]
        last = start + len(chunk) == len(tokens)
        (token,) = engine.step([BatchItem(slot, chunk, start, sampler if last else None)])
    sampler.close()
    return token


def next_token(engine: LlamaCppEngine, slot: int, tokens: list[int]) -> int | None:
    """Re-feed the last token at its position: the token a restored slot continues with."""
    engine.truncate(slot, len(tokens) - 1)
    sampler = engine.new_sampler(SamplingParams(temperature=0), 0)
    (token,) = engine.step([BatchItem(slot, tokens[-1:], len(tokens) - 1, sampler)])
    sampler.close()
    return token


def measure(engine: LlamaCppEngine, tokens: list[int], repeats: int, folder: Path) -> dict:
    n = len(tokens)
    expected = prefill(engine, 0, tokens)
    state = engine.snapshot(0)
    ram = SwapSpace(ram_limit_bytes=1 << 34, directory=folder)
    disk = SwapSpace(ram_limit_bytes=0, directory=folder)

    def swap_round_trip(space: SwapSpace) -> None:
        space.put(1, engine.snapshot(0))
        engine.release(1)
        engine.restore(space.take(1), 1)

    row = {"tokens": n, "snapshot_bytes": len(state)}
    for name, space in (("ram", ram), ("disk", disk)):
        row[f"swap_{name}_s"] = median_s(
            lambda space=space: swap_round_trip(space), repeats, lambda: engine.release(1)
        )
        if next_token(engine, 1, tokens) != expected:
            raise SystemExit(f"{n} tokens: the slot swapped through {name} continues differently")
    row["recompute_s"] = median_s(
        lambda: prefill(engine, 2, tokens), repeats, lambda: engine.release(2)
    )
    for name in ("ram", "disk"):
        row[f"swap_{name}_vs_recompute"] = round(row[f"swap_{name}_s"] / row["recompute_s"], 5)
    for space in (ram, disk):
        space.close()
    for slot in (0, 1, 2):
        engine.release(slot)
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}


def main() -> None:
    parser = arguments(__doc__)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    engine = LlamaCppEngine(
        model, model_name="bench", num_slots=3, context_length=max(LENGTHS), max_batch_tokens=BATCH
    )
    text_tokens = engine.tokenize(TEXT * 200)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in LENGTHS:
            rows.append(measure(engine, text_tokens[:n], args.repeats, Path(folder)))
            print(json.dumps(rows[-1]), flush=True)
    engine.close()
    worst = max(max(r["swap_ram_vs_recompute"], r["swap_disk_vs_recompute"]) for r in rows)
    report = {
        **report_header("context_switch", __doc__.split("\n\n")[0], model),
        "settings": {"repeats": args.repeats, "statistic": "median", "max_batch_tokens": BATCH},
        "results": rows,
        "targets": {"swap_vs_recompute_max": 0.1},
        "met": {"swap_vs_recompute": worst <= 0.1},
    }
    write_report(args.out / "context_switch.json", report)
    bar_plot(
        args.out / "context_switch.png",
        groups=[f"{r['tokens']} tokens" for r in rows],
        series={
            "swap out+in, RAM": [r["swap_ram_s"] for r in rows],
            "swap out+in, disk": [r["swap_disk_s"] for r in rows],
            "recompute": [r["recompute_s"] for r in rows],
        },
        title="Context switch: swap vs recompute (seconds, log scale; lower is better)",
        log=True,
    )


if __name__ == "__main__":
    main()
