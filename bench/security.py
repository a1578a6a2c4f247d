"""The cost of the security checks: requests/s and time to first token of `llmasos serve` with
them on against off, at concurrency 1 and 8, in the same run, same model and settings; and a
flood: one key floods a rate-limited server while another key's latency is compared with its
latency alone.

Off: no keys (an open server), no rate limits, --policy fcfs. On: the same flags with --policy
fair, --requests-per-minute 100000 and --tokens-per-minute 100000000 (limits that are never
hit), and four stored keys of four owners (created with `llmasos keys create` in the server's
own LLMASOS_HOME, each bounded to the model, a path and a page quota), spread over the clients:
each key is verified with scrypt, then cached for 30 s, the real steady state. Both servers run
side by side; each round measures on and off in turn (which goes first alternates), streaming
short completions on random prompts that share no prefix, the same prompts for both.

Flood: a third server, with security on and --requests-per-minute FLOOD_RPM. Key F floods it
from a separate process with FLOOD_CLIENTS clients that send requests as fast as they come back
(200s and 429s counted); key Q sends one short request at a time, paced under its own limit.
Each round measures Q alone, then Q during the flood from FLOOD_SETTLE_S after F's first 429
(once the burst that a full bucket lets through has gone by). The figures are Q's TTFT and
total latency p50 during the flood over alone.

    .venv/bin/python bench/security.py [--rounds 3] [--flood-rounds 2] [--max-tokens 16]
Writes bench/results/security.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx

from llmasos.auth.audit import AuditLog
from llmasos.benchmark.figures import summarize
from llmasos.benchmark.loadgen import RequestRecord, closed_loop, new_client, stream_completion
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import random_prompts
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import DEFAULT_MODEL, default_model_path
from llmasos.settings import Settings
from llmasos.storage.service import Storage
from report import arguments
from serve import workload

CONCURRENCY = (1, 8)
REQUESTS = {1: 4, 8: 16}  # per measurement: C=1 sends 4 one after another, C=8 two per client
SLOTS, CONTEXT = 16, 1024
THREADS = 1  # two threads on two shared, busy cores stall each other: 10-25x slower
KEYS = 4  # owners bench-0..3; client i uses key i % KEYS
KEY_FLAGS = (
    "--role", "user", "--model", DEFAULT_MODEL, "--read", "notes", "--write", "notes",
    "--max-pages", "100000",
)  # fmt: skip
OFF_FLAGS = ("--policy", "fcfs")
ON_FLAGS = ("--policy", "fair", "--requests-per-minute", "100000")
ON_FLAGS += ("--tokens-per-minute", "100000000")
FLOOD_RPM = 12  # about a third of the short completions this machine serves a minute
FLOOD_CLIENTS = 16
FLOOD_MAX_TOKENS = 16
FLOOD_DRAIN_S = 25.0  # the first flood: F's full bucket (a minute's worth) goes through
FLOOD_SETTLE_S = 15.0  # later floods, after F's first 429: what its bucket refilled goes through
Q_REQUESTS = 6  # per phase (alone, during the flood) and round
Q_PACE_S = 1.1 * 60 / FLOOD_RPM  # Q's requests start this far apart: under its own limit
OVERHEAD_MAX = 0.05
FLOOD_RATIO_MAX = 2.0
PATH = "/v1/completions"


def server_home(root: Path, name: str) -> Path:
    """A fresh LLMASOS_HOME (its own storage, so its own keys and audit log) that shares the
    model repository of this machine's home."""
    home = root / name
    home.mkdir()
    (home / "models").symlink_to(Settings.from_environment().home / "models")
    return home


def create_key(home: Path, owner: str) -> dict[str, str]:
    """A stored key for `owner` in `home`, as the Authorization header that carries it."""
    exe = Path(sys.executable).parent / "llmasos"
    env = {**os.environ, "LLMASOS_HOME": str(home)}
    out = subprocess.run(
        [str(exe), "keys", "create", "--owner", owner, *KEY_FLAGS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {"Authorization": f"Bearer {out.stdout.splitlines()[0].strip()}"}


def requests_per_s(records: list[RequestRecord], wall_s: float) -> dict:
    return {**summarize(records, wall_s), "requests_per_s": round(len(records) / wall_s, 4)}


def measure_overhead(root: Path, args: argparse.Namespace) -> list[dict]:
    """Rounds of on and off, in turn, at each concurrency; pooled over the rounds."""
    on_home = server_home(root, "on")
    keys = [create_key(on_home, f"bench-{k}") for k in range(KEYS)]
    sizes = {"slots": SLOTS, "context": CONTEXT, "threads": THREADS}
    sides = {"on": keys, "off": None}
    prompts = {side: iter(random_prompts(2000)) for side in sides}  # the same for both
    records: dict[tuple[str, int], list[RequestRecord]] = {}
    walls: dict[tuple[str, int], list[float]] = {}

    def run(side: str, url: str, c: int, per_client: int, max_tokens: int) -> None:
        bodies = workload(prompts[side], DEFAULT_MODEL, c, per_client, max_tokens)
        headers = [sides[side][i % KEYS] for i in range(c)] if sides[side] else None
        got, wall = asyncio.run(closed_loop(url, PATH, bodies, headers))
        records.setdefault((side, c), []).extend(got)
        walls.setdefault((side, c), []).append(wall)

    with ExitStack() as stack:
        urls = {
            "off": stack.enter_context(
                llmasos_server(**sizes, extra=OFF_FLAGS, home=server_home(root, "off"), name="off")
            ),
            "on": stack.enter_context(
                llmasos_server(**sizes, extra=ON_FLAGS, home=on_home, name="on")
            ),
        }
        for side, url in urls.items():  # warm-up: every key verified once
            run(side, url, KEYS, 1, 4)
        records.clear()
        walls.clear()
        for r in range(args.rounds):
            for c in CONCURRENCY:
                for side in ("on", "off") if r % 2 == 0 else ("off", "on"):
                    run(side, urls[side], c, REQUESTS[c] // c, args.max_tokens)
                    print(f"round {r} C={c} {side:3s} {walls[(side, c)][-1]:6.2f} s", flush=True)
    rows = []
    for c in CONCURRENCY:
        on = requests_per_s(records[("on", c)], sum(walls[("on", c)]))
        off = requests_per_s(records[("off", c)], sum(walls[("off", c)]))
        rows.append(
            {
                "concurrency": c,
                "on": on,
                "off": off,
                "requests_per_s_on_over_off": round(
                    on["requests_per_s"] / off["requests_per_s"], 4
                ),
                "ttft_p50_on_over_off": round(on["ttft_p50_s"] / off["ttft_p50_s"], 4),
                "requests_per_s_on_over_off_per_round": [
                    round(off_s / on_s, 4)
                    for on_s, off_s in zip(walls[("on", c)], walls[("off", c)], strict=True)
                ],
            }
        )
        print(f"C={c} {rows[-1]}", flush=True)
    return rows


@dataclass
class FloodCounts:
    """F's responses so far, shared with its process: 200s, 429s, 429s with Retry-After; and
    the CPU seconds its process used (set when it ends)."""

    ok: Synchronized
    refused: Synchronized
    retry_after: Synchronized
    cpu_s: Synchronized

    def snapshot(self) -> Counter:
        return Counter(ok=self.ok.value, refused=self.refused.value, retry=self.retry_after.value)


def flood(url: str, key: dict[str, str], counts: FloodCounts, stop: Event) -> None:
    """F's clients (run in their own process, so that Q's client keeps its event loop): each
    sends its next request as soon as the last one is answered, until `stop`."""

    def add(value: Synchronized) -> None:
        with value.get_lock():
            value.value += 1

    async def one_client(client: httpx.AsyncClient, feed: Iterator[str]) -> None:
        body = {"model": DEFAULT_MODEL, "max_tokens": FLOOD_MAX_TOKENS, "temperature": 0}
        while True:
            try:
                await stream_completion(client, PATH, {**body, "prompt": next(feed)}, None, key)
                add(counts.ok)
            except httpx.HTTPStatusError as error:
                if error.response.status_code != 429:
                    raise
                add(counts.refused)
                if "retry-after" in error.response.headers:
                    add(counts.retry_after)

    async def stopped() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.1)

    async def clients() -> None:
        feed = itertools.cycle(random_prompts(2000, seed=13))
        async with new_client(url) as client:
            tasks = [asyncio.create_task(one_client(client, feed)) for _ in range(FLOOD_CLIENTS)]
            until = asyncio.create_task(stopped())
            done, _ = await asyncio.wait([*tasks, until], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:  # F's requests in flight are dropped: its load ends with `stop`
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                task.result()  # a flood client's error, if one ended the flood

    asyncio.run(clients())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    counts.cpu_s.value = usage.ru_utime + usage.ru_stime


@contextmanager
def flooding(url: str, key: dict[str, str], settle_s: float) -> Iterator[FloodCounts]:
    """F floods from a separate process; yields its counts settle_s after its first 429."""
    forked = multiprocessing.get_context("fork")
    counts = FloodCounts(*(forked.Value("i", 0) for _ in range(3)), forked.Value("d", 0.0))
    stop = forked.Event()
    process = forked.Process(target=flood, args=(url, key, counts, stop))
    started = time.perf_counter()
    process.start()
    try:
        while counts.refused.value == 0:
            if time.perf_counter() - started > 180 or not process.is_alive():
                raise SystemExit(f"the flood got no 429 in 180 s: lower FLOOD_RPM ({FLOOD_RPM})")
            time.sleep(0.05)
        print(f"  F's first 429 after {time.perf_counter() - started:.1f} s", flush=True)
        time.sleep(settle_s)
        yield counts
    finally:
        stop.set()
        process.join(timeout=120)
        if process.is_alive():
            process.kill()


async def q_requests(
    url: str, key: dict[str, str], prompts: Iterator[str], max_tokens: int
) -> list[RequestRecord]:
    """Q's requests, one at a time, starting at least Q_PACE_S apart."""
    body = {"model": DEFAULT_MODEL, "max_tokens": max_tokens, "temperature": 0}
    got = []
    async with new_client(url) as client:
        for _ in range(Q_REQUESTS):
            started = time.perf_counter()
            request = {**body, "prompt": next(prompts)}
            got.append(await stream_completion(client, PATH, request, None, key))
            await asyncio.sleep(max(0.0, Q_PACE_S - (time.perf_counter() - started)))
    return got


def measure_flood(root: Path, args: argparse.Namespace) -> dict:
    """Rounds of Q alone, then Q during F's flood, after a first flood that empties F's full
    bucket (later floods start with what it refilled while Q ran alone)."""
    home = server_home(root, "flood")
    f_key, q_key = create_key(home, "flooder"), create_key(home, "quiet")
    extra = ("--policy", "fair", "--requests-per-minute", str(FLOOD_RPM))
    extra += ("--tokens-per-minute", "100000000")
    sizes = {"slots": SLOTS, "context": CONTEXT, "threads": THREADS}
    prompts = iter(random_prompts(500, seed=17))
    alone: list[RequestRecord] = []
    flooded: list[RequestRecord] = []
    during_q = Counter()
    window_s = flood_s = flood_cpu_s = 0.0
    with llmasos_server(**sizes, extra=extra, home=home, name="flood") as url:
        warm_up = [[{"model": DEFAULT_MODEL, "prompt": next(prompts), "max_tokens": 4}]]
        asyncio.run(closed_loop(url, PATH, warm_up, [q_key]))  # Q's key verified once
        with flooding(url, f_key, FLOOD_DRAIN_S) as counts:
            pass
        total = counts.snapshot()
        for r in range(args.flood_rounds):
            alone += asyncio.run(q_requests(url, q_key, prompts, args.max_tokens))
            flood_started = time.perf_counter()
            with flooding(url, f_key, FLOOD_SETTLE_S) as counts:
                before, started = counts.snapshot(), time.perf_counter()
                flooded += asyncio.run(q_requests(url, q_key, prompts, args.max_tokens))
                window_s += time.perf_counter() - started
                during_q += counts.snapshot() - before
            total += counts.snapshot()
            flood_s += time.perf_counter() - flood_started
            flood_cpu_s += counts.cpu_s.value
            print(f"flood round {r}: F during Q's requests {dict(during_q)}", flush=True)
    result = {
        "f_all_floods": {
            "ok": total["ok"],
            "refused_429": total["refused"],
            "refused_429_with_retry_after": total["retry"],
            "flooder_cpu_cores": round(flood_cpu_s / flood_s, 2),  # of the measured rounds
        },
        "q_alone": latencies(alone),
        "q_during_flood": latencies(flooded),
        "f_during_q": {
            "window_s": round(window_s, 2),
            "ok": during_q["ok"],
            "refused_429": during_q["refused"],
            "refused_429_with_retry_after": during_q["retry"],
            "ok_per_s": round(during_q["ok"] / window_s, 3),
            "refused_429_per_s": round(during_q["refused"] / window_s, 1),
            "refused_share": round(during_q["refused"] / (during_q["refused"] + during_q["ok"]), 4),
        },
    }
    for metric in ("ttft_p50_s", "latency_p50_s"):
        during, idle = result["q_during_flood"][metric], result["q_alone"][metric]
        result[f"q_{metric.removesuffix('_s')}_flood_over_alone"] = round(during / idle, 3)
    print(f"flood {result}", flush=True)
    return result


def audit_events(home: Path) -> dict[str, int]:
    """How many entries of each event the audit log under `home` holds."""
    storage = Storage.from_settings(replace(Settings.from_environment(), home=home))
    try:
        return dict(Counter(entry.event for entry in AuditLog(storage).entries(0, 10**7)))
    finally:
        storage.close()


def latencies(records: list[RequestRecord]) -> dict:
    return {
        "requests": len(records),
        "ttft_p50_s": round(statistics.median(r.ttft_s for r in records), 4),
        "latency_p50_s": round(statistics.median(r.total_s for r in records), 4),
        "ttft_max_s": round(max(r.ttft_s for r in records), 4),
        "latency_max_s": round(max(r.total_s for r in records), 4),
    }


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flood-rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=16)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    with tempfile.TemporaryDirectory(prefix="llmasos-bench-security-") as folder:
        rows = measure_overhead(Path(folder), args)
        flooded = measure_flood(Path(folder), args)
        audit = {name: audit_events(Path(folder) / name) for name in ("off", "on", "flood")}
    write_results(args, rows, flooded, audit, model)


def write_results(
    args: argparse.Namespace, rows: list[dict], flooded: dict, audit: dict, model: Path
) -> None:
    for row in rows:
        row["requests_per_s_overhead"] = round(1 - row["requests_per_s_on_over_off"], 4)
        row["ttft_p50_overhead"] = round(row["ttft_p50_on_over_off"] - 1, 4)
    met = {
        "overhead_requests_per_s": all(r["requests_per_s_overhead"] <= OVERHEAD_MAX for r in rows),
        "overhead_ttft_p50": all(r["ttft_p50_overhead"] <= OVERHEAD_MAX for r in rows),
        "flood_q_ttft_p50": flooded["q_ttft_p50_flood_over_alone"] <= FLOOD_RATIO_MAX,
        "flood_q_latency_p50": flooded["q_latency_p50_flood_over_alone"] <= FLOOD_RATIO_MAX,
        "flood_refused_with_retry_after": 0
        < flooded["f_all_floods"]["refused_429"]
        == flooded["f_all_floods"]["refused_429_with_retry_after"],
    }
    report = {
        **report_header("security", __doc__.split("\n\n")[0], model),
        "settings": {
            "max_tokens": args.max_tokens,
            "greedy": True,
            "streaming": True,
            "rounds": args.rounds,
            "requests_per_measurement": REQUESTS,
            "prompts": "unique random words (about 90 tokens), the same sequence for on and off",
            "server_flags": f"--num-slots {SLOTS} --max-running {SLOTS} --context-length "
            f"{CONTEXT} --max-batch-tokens 512 --threads {THREADS}",
            "off_flags": " ".join(OFF_FLAGS) + " (no keys: an open server)",
            "on_flags": " ".join(ON_FLAGS),
            "on_keys": f"{KEYS} stored keys of {KEYS} owners, client i uses key i % {KEYS}: "
            f"llmasos keys create --owner bench-K {' '.join(KEY_FLAGS)}",
            "audit_log": "on in all; it records auth and permission refusals, not completions "
            "and not 429s (audit_log_entries_by_event)",
            "flood_rpm": FLOOD_RPM,
            "flood_clients": FLOOD_CLIENTS,
            "flood_max_tokens": FLOOD_MAX_TOKENS,
            "flood_drain_s": FLOOD_DRAIN_S,
            "flood_settle_s": FLOOD_SETTLE_S,
            "flood_rounds": args.flood_rounds,
            "q_requests_per_phase": Q_REQUESTS,
            "q_pace_s": round(Q_PACE_S, 2),
        },
        "results": rows,
        "flood": flooded,
        "audit_log_entries_by_event": audit,
        "targets": {"overhead_max": OVERHEAD_MAX, "flood_q_over_alone_max": FLOOD_RATIO_MAX},
        "met": met,
    }
    write_report(args.out / "security.json", report)
    groups = [f"req/s C={r['concurrency']}" for r in rows]
    groups += [f"TTFT p50 C={r['concurrency']}" for r in rows]
    groups += ["Q TTFT p50", "Q latency p50"]
    bar_plot(
        args.out / "security.png",
        groups=groups,
        series={
            "security off / Q alone": [1.0] * len(groups),
            "security on / Q during F's flood": [r["requests_per_s_on_over_off"] for r in rows]
            + [r["ttft_p50_on_over_off"] for r in rows]
            + [flooded["q_ttft_p50_flood_over_alone"], flooded["q_latency_p50_flood_over_alone"]],
        },
        title="Security on over off (req/s, TTFT p50; target within 5%) and key Q's latency "
        "during another key's flood over alone (target <= 2x); 1.0 = no change",
    )


if __name__ == "__main__":
    main()
