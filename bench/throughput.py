"""Aggregate output tokens/s at 1, 4, 8 and 16 concurrent processes, through the kernel and through
a bare llama.cpp loop that decodes the same batches, in the same run.

The bare loop is the ceiling: the same context settings, one llama_decode per step over every live
sequence, a greedy C sampler per sequence, and no scheduler, process table, streaming or text
decoding. Both sides must produce identical tokens; the run fails otherwise.

    .venv/bin/python bench/throughput.py [--repeats 3] [--max-tokens 64]
Writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import llama_cpp

from llmasos import Client
from llmasos.engine.llamacpp import context_params, model_params
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from servers import report_header

CONCURRENCY = (1, 4, 8, 16)
NUM_SLOTS = 16
CONTEXT_LENGTH = 512
MAX_BATCH_TOKENS = 512
TOPICS = [
    "the history of Rome",
    "how volcanoes form",
    "the rules of chess",
    "baking sourdough bread",
    "the life of bees",
    "how compilers work",
    "the water cycle",
    "learning a new language",
    "the first moon landing",
    "how vaccines work",
    "the architecture of cathedrals",
    "training for a marathon",
    "the stock market",
    "jazz improvisation",
    "deep sea creatures",
    "the invention of printing",
]
PROMPTS = [
    f"Here is a short, clear explanation of {topic} for a curious reader:\n\n" for topic in TOPICS
]


class BareLoop:
    """The baseline: llama.cpp's low-level API driven directly, one sequence per prompt."""

    def __init__(self, model_path: Path) -> None:
        self.model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), model_params())
        params = context_params(NUM_SLOTS, CONTEXT_LENGTH, MAX_BATCH_TOKENS, None)
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.batch = llama_cpp.llama_batch_init(MAX_BATCH_TOKENS, 0, 1)

    def tokenize(self, text: str) -> list[int]:
        data = text.encode()
        out = (llama_cpp.llama_token * (len(data) + 8))()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), out, len(out), True, True)
        return list(out[:n])

    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        """entries: (token, position, sequence, wants logits)."""
        batch = self.batch
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        batch.n_tokens = len(entries)
        if llama_cpp.llama_decode(self.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    def run(self, prompts: list[list[int]], max_tokens: int) -> tuple[list[list[int]], float]:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(self.ctx), True)
        samplers = []
        for _ in prompts:
            chain = llama_cpp.llama_sampler_chain_init(
                llama_cpp.llama_sampler_chain_default_params()
            )
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
            samplers.append(chain)
        outputs: list[list[int]] = [[] for _ in prompts]
        started = time.perf_counter()
        entries = [
            (token, pos, seq, pos == len(prompt) - 1)
            for seq, prompt in enumerate(prompts)
            for pos, token in enumerate(prompt)
        ]
        self._decode(entries)
        rows = [i for i, entry in enumerate(entries) if entry[3]]
        for seq, row in enumerate(rows):
            outputs[seq].append(llama_cpp.llama_sampler_sample(samplers[seq], self.ctx, row))
        for _ in range(max_tokens - 1):
            self._decode(
                [
                    (out[-1], len(prompts[seq]) + len(out) - 1, seq, True)
                    for seq, out in enumerate(outputs)
                ]
            )
            for seq, out in enumerate(outputs):
                out.append(llama_cpp.llama_sampler_sample(samplers[seq], self.ctx, seq))
        elapsed = time.perf_counter() - started
        for chain in samplers:
            llama_cpp.llama_sampler_free(chain)
        return outputs, elapsed


def run_kernel(
    client: Client, prompts: list[str], max_tokens: int
) -> tuple[list[list[int]], float]:
    started = time.perf_counter()
    with client.kernel.paused():
        handles = [client.spawn(p, max_tokens=max_tokens, temperature=0) for p in prompts]
    outputs = [h.wait().token_ids for h in handles]
    return outputs, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json"
    )
    args = parser.parse_args()

    model_path = default_model_path(Settings.from_environment().home)
    bare = BareLoop(model_path)
    client = Client(
        model=str(model_path),
        max_running=NUM_SLOTS,
        num_slots=NUM_SLOTS,
        context_length=CONTEXT_LENGTH,
        max_batch_tokens=MAX_BATCH_TOKENS,
        # Same batches as the bare loop: no prefix reuse (the prompts share their first words).
        min_prefix_tokens=10**6,
    )
    rows = []
    try:
        for n in CONCURRENCY:
            prompts = PROMPTS[:n]
            token_prompts = [bare.tokenize(p) for p in prompts]
            kernel_s, bare_s = [], []
            for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both
                kernel_out, seconds = run_kernel(client, prompts, args.max_tokens)
                kernel_s.append(seconds)
                bare_out, seconds = bare.run(token_prompts, args.max_tokens)
                bare_s.append(seconds)
                if kernel_out != bare_out:
                    raise SystemExit(f"concurrency {n}: the kernel and the bare loop disagree")
            tokens = n * args.max_tokens
            kernel_tps = tokens / statistics.median(kernel_s)
            bare_tps = tokens / statistics.median(bare_s)
            rows.append(
                {
                    "concurrency": n,
                    "output_tokens": tokens,
                    "kernel_tokens_per_s": round(kernel_tps, 2),
                    "bare_loop_tokens_per_s": round(bare_tps, 2),
                    "kernel_vs_bare": round(kernel_tps / bare_tps, 3),
                    "kernel_seconds": [round(s, 3) for s in kernel_s],
                    "bare_loop_seconds": [round(s, 3) for s in bare_s],
                }
            )
            print(
                f"n={n:2d}  kernel {kernel_tps:7.1f} tok/s  bare {bare_tps:7.1f} tok/s  "
                f"ratio {kernel_tps / bare_tps:.3f}",
                flush=True,
            )
    finally:
        client.close()

    first, last = rows[0], rows[-1]
    scaling = {
        "kernel": round(last["kernel_tokens_per_s"] / first["kernel_tokens_per_s"], 3),
        "bare_loop": round(last["bare_loop_tokens_per_s"] / first["bare_loop_tokens_per_s"], 3),
    }
    report = {
        **report_header("throughput", __doc__.split("\n\n")[0], model_path),
        "settings": {
            "max_tokens": args.max_tokens,
            "greedy": True,
            "repeats": args.repeats,
            "num_slots": NUM_SLOTS,
            "max_batch_tokens": MAX_BATCH_TOKENS,
            "statistic": "median wall time from spawn to last token",
        },
        "results": rows,
        "scaling_16_vs_1": scaling,
        "targets": {"kernel_vs_bare_min": 0.9, "scaling_16_vs_1_min": 3.0},
        "met": {
            "kernel_vs_bare": all(r["kernel_vs_bare"] >= 0.9 for r in rows),
            "scaling_16_vs_1": scaling["kernel"] >= 3.0,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"16 vs 1: kernel {scaling['kernel']}x, bare loop {scaling['bare_loop']}x -> {args.out}")


if __name__ == "__main__":
    main()
