"""Batch inference: LLMasOS's OpenAI batches API against the same requests sent to llama.cpp's
`llama-server` by concurrent clients, in the same run; and an interactive client's time to first
token while a low-priority batch runs, against idle.

Throughput: completions (greedy, short) whose prompts share one instruction prefix (about 100
tokens, as a batch job's do) and end with a distinct ticket of about 30 tokens. LLMasOS gets them
as one batch through the official `openai` client: the file uploaded, the batch created, polled
until completed, its output downloaded; the wall time runs from the upload's start to the output
downloaded. llama-server gets the same bodies from SLOTS closed-loop streaming clients; its wall
time runs from the first request to the last answer. Both servers run side by side with the
same model, threads, slots and context per slot; llama-server with our engine's K/V settings
(q8_0 K/V, flash attention, a full-size sliding-window cache: without --swa-full it reuses no
prefix of this model's prompts), a unified K/V cache and its prompt cache (its default). The
requests are split into rounds, each with its own tickets, and which server goes first
alternates. Each output line must answer its request exactly once, and a sample of the batch's
answers must equal the same requests sent one at a time (greedy).

Interactive TTFT: on the same (open) server, under its default `fair` policy, a client streams
short completions one after another (priority 0, unique random prompts) while a big batch runs
at the batch priority (-100), from the moment the batch has answered its first lines; against
the same client on the idle server. Rounds alternate idle and busy; each busy round's batch is
cancelled once its probes are done.

    .venv/bin/python bench/batches.py [--requests 160] [--rounds 2] [--busy-batch 1000]
Writes bench/results/batches.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
from openai import OpenAI
from openai.types import Batch

from llmasos.benchmark.loadgen import closed_loop, new_client, stream_completion
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import random_prompts
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import DEFAULT_MODEL, default_model_path
from llmasos.server.batch_runner import BATCH_PRIORITY, CONCURRENCY
from llmasos.settings import Settings
from report import arguments
from security import latencies, requests_per_s, server_home
from serve import workload
from servers import Q8_0_KV, llama_server

SLOTS, CONTEXT = 16, 1024
THREADS = 1  # as in security.py: two threads on the 2 shared, busy cores stall each other
LLAMA_FLAGS = ("-kvu", "--swa-full", *Q8_0_KV)  # our engine sets swa_full too
PATH = "/v1/completions"
POLL_S = 0.25
SAMPLE = 8  # batch answers checked against single requests
PROBES = 8  # interactive requests per phase and round
PROBE_MAX_TOKENS = 4
BUSY_AFTER = 4  # probing starts once the batch has answered this many lines
TTFT_RATIO_MAX = 1.5
PREFIX = (
    "You are the triage assistant of an online shop's customer support. Read the ticket below "
    "and answer on one line with exactly one category from this list: billing, shipping, "
    "returns, account, product question, or other. Then write one short sentence that says what "
    "the customer wants, in plain English, without a greeting and without repeating the ticket "
    "word for word. Be brief and consistent: a program reads your answers, so keep to the "
    "format and do not add anything else.\n\n"
)
PRODUCTS = [
    "kettle",
    "desk lamp",
    "rain jacket",
    "phone case",
    "coffee grinder",
    "backpack",
    "yoga mat",
    "headphones",
    "water bottle",
    "wool scarf",
    "cutting board",
    "router",
]
ISSUES = [
    "arrived broken",
    "never arrived",
    "was charged twice",
    "is the wrong colour",
    "stopped working after a week",
    "came without the manual",
    "is smaller than shown",
    "was delivered to my neighbour",
]
ASKS = [
    "Can I get a refund?",
    "Please send a new one.",
    "How do I return it?",
    "Who do I talk to about this?",
    "Can you check my account?",
    "What are my options?",
]


def ticket_prompts(count: int, seed: int) -> list[str]:
    """The shared instruction prefix, then a distinct short ticket each."""
    rng = random.Random(seed)
    return [
        f"{PREFIX}Ticket {rng.randrange(10**5)}: The {rng.choice(PRODUCTS)} I ordered on "
        f"{rng.randrange(1, 29)} March {rng.choice(ISSUES)}. {rng.choice(ASKS)}\nCategory:"
        for _ in range(count)
    ]


def batch_file(bodies: list[dict]) -> bytes:
    lines = (
        json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": PATH, "body": body})
        for i, body in enumerate(bodies)
    )
    return ("\n".join(lines) + "\n").encode()


def submit(client: OpenAI, bodies: list[dict]) -> str:
    """Upload the requests and create their batch; its id."""
    upload = client.files.create(file=("batch.jsonl", batch_file(bodies)), purpose="batch")
    return client.batches.create(input_file_id=upload.id, endpoint=PATH, completion_window="24h").id


def wait(client: OpenAI, batch_id: str, done: Callable[[Batch], bool]) -> Batch:
    """Poll the batch until `done` holds for it."""
    deadline = time.perf_counter() + 3600
    while not done(batch := client.batches.retrieve(batch_id)):
        if batch.status in ("failed", "expired") or time.perf_counter() > deadline:
            raise SystemExit(f"batch {batch_id}: {batch.status} ({batch.errors})")
        time.sleep(POLL_S)
    return batch


def run_batch(client: OpenAI, bodies: list[dict]) -> tuple[list[dict], float, Batch]:
    """The batch's output lines, the wall time from the upload's start to the output
    downloaded, and the batch as it completed."""
    started = time.perf_counter()
    batch = wait(client, submit(client, bodies), lambda b: b.status == "completed")
    data = client.files.content(batch.output_file_id).content
    wall = time.perf_counter() - started
    return [json.loads(line) for line in data.splitlines() if line], wall, batch


def check_batch(outputs: list[dict], count: int, batch: Batch) -> dict:
    """Every request answered exactly once, with a 200."""
    ids = Counter(o["custom_id"] for o in outputs)
    return {
        "lines": len(outputs),
        "each_answered_once": ids == Counter(f"req-{i}" for i in range(count)),
        "all_status_200": all(o["response"]["status_code"] == 200 for o in outputs),
        "error_file_id": batch.error_file_id,
        "request_counts": batch.request_counts.model_dump(),
    }


def batch_summary(outputs: list[dict], wall_s: float) -> dict:
    """requests/s and completion tokens/s of batches, from their answers' usage."""
    usages = [o["response"]["body"]["usage"] for o in outputs]
    prompt_tokens = sum(u["prompt_tokens"] for u in usages)
    tokens = sum(u["completion_tokens"] for u in usages)
    cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages)
    return {
        "requests": len(usages),
        "completion_tokens": tokens,
        "prompt_tokens": prompt_tokens,
        "wall_s": round(wall_s, 3),
        "requests_per_s": round(len(usages) / wall_s, 4),
        "throughput_tokens_per_s": round(tokens / wall_s, 2),
        "prefix_hit_rate": round(cached / prompt_tokens, 4),
    }


def text_of(output: dict | None) -> str | None:
    return None if output is None else output["response"]["body"]["choices"][0]["text"]


async def one_at_a_time(url: str, bodies: list[dict]) -> list[str]:
    async with new_client(url) as client:
        return [(await stream_completion(client, PATH, body)).text for body in bodies]


def measure_throughput(
    client: OpenAI, urls: dict[str, str], model: str, args: argparse.Namespace
) -> dict:
    """Rounds of the same requests as one batch on LLMasOS and from SLOTS clients on
    llama-server (which goes first alternates), then the correctness checks."""
    per_round = args.requests // args.rounds
    walls: dict[str, list[float]] = {"llmasos": [], "llama_server": []}
    texts: dict[str, list[str]] = {"llmasos": [], "llama_server": []}
    outputs, records, bodies, checks = [], [], [], []
    for r in range(args.rounds):
        prompts = iter(ticket_prompts(per_round, seed=100 + r))
        theirs = workload(prompts, model, SLOTS, per_round // SLOTS, args.max_tokens)
        ours = [{**body, "model": DEFAULT_MODEL} for sequence in theirs for body in sequence]
        for side in ("llmasos", "llama_server") if r % 2 == 0 else ("llama_server", "llmasos"):
            if side == "llmasos":
                got, wall, batch = run_batch(client, ours)
                checks.append(check_batch(got, len(ours), batch))
                by_id = {o["custom_id"]: o for o in got}
                texts[side] += [text_of(by_id.get(f"req-{i}")) for i in range(len(ours))]
                outputs += got
            else:  # closed_loop's records come in the order of `ours`
                got, wall = asyncio.run(closed_loop(urls[side], PATH, theirs))
                texts[side] += [record.text for record in got]
                records += got
            walls[side].append(wall)
            print(f"round {r} {side:12s} {per_round} requests {wall:7.2f} s", flush=True)
        bodies += ours
    sample = random.Random(5).sample(range(len(bodies)), min(SAMPLE, len(bodies)))
    singles = asyncio.run(one_at_a_time(urls["llmasos"], [bodies[i] for i in sample]))
    equal = [texts["llmasos"][i] == text for i, text in zip(sample, singles, strict=True)]
    ours_summary = batch_summary(outputs, sum(walls["llmasos"]))
    theirs_summary = requests_per_s(records, sum(walls["llama_server"]))
    same = [a == b for a, b in zip(texts["llmasos"], texts["llama_server"], strict=True)]
    return {
        "llmasos_batch": ours_summary,
        "llama_server": {k: v for k, v in theirs_summary.items() if not k.startswith("ttft")},
        "requests_per_s_ratio": round(
            ours_summary["requests_per_s"] / theirs_summary["requests_per_s"], 4
        ),
        "tokens_per_s_ratio": round(
            ours_summary["throughput_tokens_per_s"] / theirs_summary["throughput_tokens_per_s"], 4
        ),
        "requests_per_s_ratio_per_round": [
            round(t / o, 4) for o, t in zip(walls["llmasos"], walls["llama_server"], strict=True)
        ],
        "walls_s": {side: [round(w, 2) for w in ws] for side, ws in walls.items()},
        "correctness": {
            "batches": checks,
            "sample_equal_to_single_requests": sum(equal),
            "sample": len(sample),
            "same_text_as_llama_server_share": round(sum(same) / len(same), 4),
        },
    }


def measure_ttft(client: OpenAI, url: str, args: argparse.Namespace) -> dict:
    """Rounds of PROBES interactive requests on the idle server and during a batch of
    args.busy_batch lines (which goes first alternates); each batch is cancelled after."""
    prompts = iter(random_prompts(1000, seed=23))
    idle, busy, windows = [], [], []
    for r in range(args.rounds):
        for phase in ("idle", "busy") if r % 2 == 0 else ("busy", "idle"):
            probes = workload(prompts, DEFAULT_MODEL, 1, args.probes, PROBE_MAX_TOKENS)
            if phase == "idle":
                idle += asyncio.run(closed_loop(url, PATH, probes))[0]
                print(f"round {r} idle TTFT p50 {latencies(idle)['ttft_p50_s']} s", flush=True)
                continue
            lines = ticket_prompts(args.busy_batch, seed=200 + r)
            body = {"model": DEFAULT_MODEL, "max_tokens": args.max_tokens, "temperature": 0}
            batch_id = submit(client, [{**body, "prompt": p} for p in lines])
            before = wait(client, batch_id, lambda b: b.request_counts.completed >= BUSY_AFTER)
            started = time.perf_counter()
            got, _ = asyncio.run(closed_loop(url, PATH, probes))
            window_s = time.perf_counter() - started
            after = client.batches.retrieve(batch_id)
            client.batches.cancel(batch_id)
            ended = wait(client, batch_id, lambda b: b.status in ("cancelled", "completed"))
            busy += got
            answered = after.request_counts.completed - before.request_counts.completed
            windows.append(
                {
                    "window_s": round(window_s, 2),
                    "status_after_probes": after.status,
                    "lines_answered_during_probes": answered,
                    "lines_per_s_during_probes": round(answered / window_s, 3),
                    "status_after_cancel": ended.status,
                    "lines_answered_in_all": ended.request_counts.completed,
                }
            )
            print(f"round {r} busy TTFT p50 {latencies(busy)['ttft_p50_s']} s", flush=True)
    result = {"idle": latencies(idle), "during_batch": latencies(busy), "batches": windows}
    result["ttft_p50_busy_over_idle"] = round(
        result["during_batch"]["ttft_p50_s"] / result["idle"]["ttft_p50_s"], 3
    )
    return result


def prefix_share(url: str, prompt: str) -> dict:
    """Tokens of the shared prefix over tokens of a whole prompt (llama-server's tokenizer:
    the same GGUF)."""

    def count(text: str) -> int:
        reply = httpx.post(f"{url}/tokenize", json={"content": text, "add_special": True})
        return len(reply.raise_for_status().json()["tokens"])

    tokens = {"prefix": count(PREFIX), "prompt": count(prompt)}
    return {**tokens, "share": round(tokens["prefix"] / tokens["prompt"], 3)}


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--probes", type=int, default=PROBES)
    parser.add_argument("--busy-batch", type=int, default=1000)
    args = parser.parse_args()
    if args.requests % (args.rounds * SLOTS):
        raise SystemExit(f"--requests must be a multiple of --rounds x {SLOTS}")
    model = default_model_path(Settings.from_environment().home)
    sizes = {"slots": SLOTS, "context": CONTEXT, "threads": THREADS}
    with (
        tempfile.TemporaryDirectory(prefix="llmasos-bench-batches-") as folder,
        ExitStack() as stack,
    ):
        urls = {
            "llmasos": stack.enter_context(
                llmasos_server(**sizes, home=server_home(Path(folder), "home"))
            ),
            "llama_server": stack.enter_context(llama_server(model, **sizes, extra=LLAMA_FLAGS)),
        }
        client = stack.enter_context(OpenAI(base_url=f"{urls['llmasos']}/v1", api_key="none"))
        for url, name in ((urls["llmasos"], DEFAULT_MODEL), (urls["llama_server"], model.name)):
            warm_up = workload(iter(random_prompts(1, seed=3)), name, 1, 1, 4)
            asyncio.run(closed_loop(url, PATH, warm_up))
        share = prefix_share(urls["llama_server"], ticket_prompts(1, seed=100)[0])
        throughput = measure_throughput(client, urls, model.name, args)
        ttft = measure_ttft(client, urls["llmasos"], args)
    write_results(args, share, throughput, ttft, model)


def write_results(
    args: argparse.Namespace, share: dict, throughput: dict, ttft: dict, model: Path
) -> None:
    correct = throughput["correctness"]
    met = {
        "ttft_p50_busy_over_idle": ttft["ttft_p50_busy_over_idle"] <= TTFT_RATIO_MAX,
        "each_line_answered_once": all(
            b["each_answered_once"] and b["all_status_200"] for b in correct["batches"]
        ),
        "sample_equal_to_single_requests": correct["sample_equal_to_single_requests"]
        == correct["sample"],
    }
    report = {
        **report_header("batches", __doc__.split("\n\n")[0], model),
        "settings": {
            "requests": args.requests,
            "rounds": args.rounds,
            "max_tokens": args.max_tokens,
            "greedy": True,
            "prompts": "a shared instruction prefix, then a distinct ticket; the same for both",
            "prefix_tokens": share["prefix"],
            "prompt_tokens_example": share["prompt"],
            "prefix_share": share["share"],
            "llmasos": f"one batch per round (official openai client), polled every {POLL_S} s; "
            f"the server runs {CONCURRENCY} lines at a time at priority {BATCH_PRIORITY}",
            "llama_server": f"{SLOTS} closed-loop streaming clients",
            "server_flags": f"--num-slots {SLOTS} --max-running {SLOTS} --context-length "
            f"{CONTEXT} --max-batch-tokens 512 --threads {THREADS} (policy fair, open server)",
            "llama_server_flags": f"-np {SLOTS} -c {SLOTS * CONTEXT} -b 512 -ub 512 "
            f"-t {THREADS} -tb {THREADS} {' '.join(LLAMA_FLAGS)} (prompt cache on, "
            "RAM prompt cache 8192 MiB: its defaults; --cache-reuse left off: the shared part is a "
            "prefix, which the prompt cache reuses)",
            "probes_per_phase_and_round": args.probes,
            "probe_max_tokens": PROBE_MAX_TOKENS,
            "probe_prompts": "unique random words (about 90 tokens), priority 0, streaming",
            "busy_batch_lines": args.busy_batch,
            "busy_after_lines": BUSY_AFTER,
        },
        "throughput": throughput,
        "interactive_ttft": ttft,
        "targets": {"ttft_p50_busy_over_idle_max": TTFT_RATIO_MAX, "throughput": None},
        "met": met,
    }
    write_report(args.out / "batches.json", report)
    bar_plot(
        args.out / "batches.png",
        groups=["requests/s", "completion tokens/s", "interactive TTFT p50"],
        series={
            "llama-server / idle": [1.0, 1.0, 1.0],
            "LLMasOS batch / during a batch": [
                throughput["requests_per_s_ratio"],
                throughput["tokens_per_s_ratio"],
                ttft["ttft_p50_busy_over_idle"],
            ],
        },
        title="LLMasOS's batches API over llama-server's concurrent clients (throughput, no "
        "target), and interactive TTFT p50 during a batch over idle (target <= 1.5x)",
    )


if __name__ == "__main__":
    main()
