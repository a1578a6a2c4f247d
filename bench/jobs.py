"""Training jobs: a LoRA job run by the OS against the same peft loop run directly, outside the
OS, in the same run; and an interactive client's time to first token while a training job and
a 1000-request batch run, against idle.

Throughput: the same data (48 short records), the same LoRA (rank 8 on q and v, alpha 16, AdamW,
learning rate 1e-3), the same batches (the job's Plan: batch 4, padded per batch) and the same
torch threads. The direct loop is peft as a user writes it: the model called with labels, its
loss backpropagated. The job runs through a JobManager as a user's `submit_task` does (its own
worker process, under SCHED_IDLE and nice 19: on an idle machine that costs nothing); its step
times come from its step log. Both drop their first step (warm-up); rounds alternate which goes
first.

Interactive TTFT: on one server (default `fair` policy, one engine thread), a client streams
short completions one after another (priority 0, unique prompts) on the idle server, and while a
training job (background priority) and a batch of 1000 lines (priority -100) run. Rounds
alternate idle and busy; each busy round cancels its job and its batch after the probes.

Batch inference throughput against llama-server is bench/batches.py's (bench/results/
batches.json), quoted here.

    .venv/bin/python bench/jobs.py [--steps 24] [--rounds 2] [--busy-batch 1000]
Writes bench/results/jobs.json and .png.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from openai import OpenAI
from transformers import AutoTokenizer

from batches import PATH, POLL_S, PROBE_MAX_TOKENS, submit, ticket_prompts, wait
from llmasos.benchmark.loadgen import closed_loop
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import random_prompts
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.jobs.hf_model import hf_copy
from llmasos.jobs.job_files import Seal
from llmasos.jobs.job_manager import JobManager
from llmasos.jobs.tasks import TaskState, TrainingTask
from llmasos.jobs.token_cache import Sample, tokenised
from llmasos.jobs.trainer import Plan
from llmasos.models.default import DEFAULT_MODEL, default_model_path
from llmasos.models.repository import Repository
from llmasos.settings import Settings
from report import REPO, arguments
from security import latencies, server_home
from serve import workload

PLAIN = Seal(None, "bench")  # the direct loop's data at rest: not sealed (no master key)
SAMPLES = 48
BATCH = 4
LEARNING_RATE = 1e-3
THREADS = 1  # the server's engine thread; training uses torch's own (all cores)
THROUGHPUT_MIN = 0.9
TTFT_RATIO_MAX = 1.5
PROBES = 8
BUSY_AFTER = 4


def records() -> bytes:
    colours = ["vermilion", "teal", "ochre", "mauve", "umber", "cerulean"]
    lines = []
    for i in range(SAMPLES):
        text = (
            f"Q: What colour is the zorblat of person {i}?\n"
            f"A: The zorblat of person {i} is {colours[i % len(colours)]}." + " Indeed." * (i % 5)
        )
        lines.append(json.dumps({"text": text}))
    return ("\n".join(lines) + "\n").encode()


def task_for(data: Path, steps: int, **fields) -> TrainingTask:
    epochs = -(-steps * BATCH // SAMPLES)
    return TrainingTask(
        model=DEFAULT_MODEL,
        data=str(data),
        epochs=epochs,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH,
        checkpoint_every=10_000,
        **fields,
    )


def direct_loop(hf_dir: Path, samples: list[Sample], task: TrainingTask, steps: int) -> list[float]:
    """Seconds per step of the plain peft loop on the job's batches."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    plan = Plan(len(samples), task)
    torch.manual_seed(task.seed)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    base = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model = get_peft_model(base, config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    times = []
    for step in range(1, steps + 1):
        batch = [samples[i].ids for i in plan.batch(step)]
        width = max(len(ids) for ids in batch)
        ids = torch.tensor([ids + [0] * (width - len(ids)) for ids in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
        labels = ids.masked_fill(mask == 0, -100)
        started = time.perf_counter()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times[1:]


def os_job(home: Path, data: Path, steps: int) -> tuple[list[float], dict]:
    """Seconds per step of the same training as a job (from its step log), and its status."""
    jobs = JobManager(home, Repository(home / "models"))
    try:
        status = jobs.submit(task_for(data, steps), data.read_bytes(), "bench")
        done = jobs.wait(status.id)
        if done.state is not TaskState.SUCCEEDED:
            raise SystemExit(f"the job {done.state.value}: {done.error}")
        stamps = [entry["time"] for entry in jobs.logs(status.id)][:steps]
    finally:
        jobs.close()
    return [b - a for a, b in itertools.pairwise(stamps)], done.to_json()


def measure_throughput(root: Path, steps: int, rounds: int) -> dict:
    home = server_home(root, "throughput")
    data = root / "train.jsonl"
    data.write_bytes(records())
    hf_dir = hf_copy(Repository(home / "models"), DEFAULT_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    task = task_for(data, steps)
    samples, _ = tokenised(data.read_bytes(), tokenizer, "bench", 256, root / "cache", PLAIN)
    direct, job, statuses = [], [], []
    for r in range(rounds):
        for side in ("direct", "os") if r % 2 == 0 else ("os", "direct"):
            if side == "direct":
                direct += direct_loop(hf_dir, samples, task, steps)
            else:
                times, status = os_job(home, data, steps)
                job += times
                statuses.append(status)
            print(f"round {r} {side}: {len(direct)} direct, {len(job)} job steps", flush=True)
    summary = {
        "direct_s_per_step_p50": round(statistics.median(direct), 3),
        "job_s_per_step_p50": round(statistics.median(job), 3),
        "steps_each": len(direct),
        "samples_per_step": BATCH,
    }
    summary["job_over_direct_throughput"] = round(
        summary["direct_s_per_step_p50"] / summary["job_s_per_step_p50"], 3
    )
    for side in ("direct", "job"):
        summary[f"{side}_samples_per_s"] = round(BATCH / summary[f"{side}_s_per_step_p50"], 2)
    summary["first_job_status"] = {
        k: statuses[0][k] for k in ("step", "total_steps", "loss", "data_cached")
    }
    return summary


def start_training(url: str, data: Path) -> str:
    """A long background training job on the server; its id once its first step is done."""
    body = {"task": task_for(data, 1000).to_json(), "data": data.read_text()}
    task_id = httpx.post(f"{url}/v1/tasks", json=body, timeout=60).raise_for_status().json()["id"]
    while httpx.get(f"{url}/v1/tasks/{task_id}", timeout=60).json()["step"] < 1:
        time.sleep(POLL_S)
    return task_id


def busy_round(client: OpenAI, url: str, data: Path, probes: list, lines: int, r: int) -> tuple:
    """Probes while a training job and a batch run; the records and what the job and the batch
    did meanwhile."""
    task_id = start_training(url, data)
    body = {"model": DEFAULT_MODEL, "max_tokens": 16, "temperature": 0}
    batch_id = submit(client, [{**body, "prompt": p} for p in ticket_prompts(lines, 300 + r)])
    before = wait(client, batch_id, lambda b: b.request_counts.completed >= BUSY_AFTER)
    step_before = httpx.get(f"{url}/v1/tasks/{task_id}", timeout=60).json()["step"]
    started = time.perf_counter()
    got, _ = asyncio.run(closed_loop(url, PATH, probes))
    window_s = time.perf_counter() - started
    step_after = httpx.get(f"{url}/v1/tasks/{task_id}", timeout=60).json()["step"]
    after = client.batches.retrieve(batch_id)
    client.batches.cancel(batch_id)
    httpx.post(f"{url}/v1/tasks/{task_id}/cancel", timeout=60).raise_for_status()
    wait(client, batch_id, lambda b: b.status in ("cancelled", "completed"))
    while httpx.get(f"{url}/v1/tasks/{task_id}", timeout=60).json()["state"] != "cancelled":
        time.sleep(POLL_S)
    answered = after.request_counts.completed - before.request_counts.completed
    window = {
        "window_s": round(window_s, 2),
        "training_steps_during_probes": step_after - step_before,
        "batch_lines_answered_during_probes": answered,
    }
    return got, window


def measure_ttft(root: Path, rounds: int, lines: int) -> dict:
    data = root / "busy.jsonl"
    data.write_bytes(records())
    prompts = iter(random_prompts(1000, seed=29))
    idle, busy, windows = [], [], []
    home = server_home(root, "ttft")
    with llmasos_server(slots=16, context=1024, threads=THREADS, home=home, name="jobs") as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        for r in range(rounds):
            for phase in ("idle", "busy") if r % 2 == 0 else ("busy", "idle"):
                probes = workload(prompts, DEFAULT_MODEL, 1, PROBES, PROBE_MAX_TOKENS)
                if phase == "idle":
                    idle += asyncio.run(closed_loop(url, PATH, probes))[0]
                else:
                    got, window = busy_round(client, url, data, probes, lines, r)
                    busy += got
                    windows.append(window)
                print(f"round {r} {phase}: {len(idle)} idle, {len(busy)} busy probes", flush=True)
    result = {"idle": latencies(idle), "during_job_and_batch": latencies(busy), "windows": windows}
    result["ttft_p50_busy_over_idle"] = round(
        result["during_job_and_batch"]["ttft_p50_s"] / result["idle"]["ttft_p50_s"], 3
    )
    return result


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--busy-batch", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        throughput = measure_throughput(Path(folder), args.steps, args.rounds)
    print(json.dumps(throughput), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        ttft = measure_ttft(Path(folder), args.rounds, args.busy_batch)
    batches = json.loads((REPO / "bench" / "results" / "batches.json").read_text())
    report = {
        **report_header("jobs", __doc__, default_model_path(Settings.from_environment().home)),
        "parameters": {"steps": args.steps, "rounds": args.rounds, "busy_batch": args.busy_batch,
                       "samples": SAMPLES, "batch_size": BATCH, "engine_threads": THREADS},
        "training": throughput,
        "interactive": ttft,
        "batch_vs_llama_server": {
            "from": f"bench/results/batches.json ({batches['date']}, {batches['commit']})",
            "requests_per_s_ratio": batches["throughput"]["requests_per_s_ratio"],
        },
        "targets": {"training_throughput_min": THROUGHPUT_MIN, "ttft_ratio_max": TTFT_RATIO_MAX},
        "met": {
            "training_throughput": throughput["job_over_direct_throughput"] >= THROUGHPUT_MIN,
            "ttft": ttft["ttft_p50_busy_over_idle"] <= TTFT_RATIO_MAX,
        },
    }  # fmt: skip
    write_report(args.out / "jobs.json", report)
    bar_plot(
        args.out / "jobs.png",
        groups=["training throughput (job / direct)", "TTFT p50 (job + batch / idle)"],
        series={
            "LLMasOS": [throughput["job_over_direct_throughput"], ttft["ttft_p50_busy_over_idle"]],
            "target": [THROUGHPUT_MIN, TTFT_RATIO_MAX],
        },
        title="Training jobs: throughput against plain peft, interactive TTFT while busy",
    )


if __name__ == "__main__":
    main()
