"""Soak: 64 clients for 5 minutes against one `llmasos serve`, then a kill -9 mid-load.

Each client loops until the time is up, picking (seeded) one of: a chat completion, a streamed
completion read to its end, a stream it closes after its first text (a cancellation), an urgent
streamed completion (priority 5), a declarative agent (calculator, 2 steps) followed to its end
and removed, a batch of embeddings, and a file write. Every request carries its own X-Request-ID;
the server logs JSON lines, so the access log shows whether each was answered exactly once.

Figures: requests and latency by kind, errors, lost requests (sent, never answered or never
logged) and duplicated ones (logged twice), cancelled processes that did not end killed, and
the server's memory at three points: its baseline (after a warm-up of every kind, idle), its
peak, and after the load (idle again): RSS, used KV pages, swap bytes and swap files. Then a
burst of writes and completions is cut by kill -9, the server restarts on the same home, and
every acknowledged write must read back byte for byte.

    .venv/bin/python bench/soak.py [--clients 64] [--seconds 300]    (make soak)
Writes bench/results/soak.json and .png.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from llmasos.benchmark.loadgen import percentile
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.report import pyplot, report_header, write_report
from report import arguments
from soak_load import Load, drive
from soak_server import access_ids, server_pid, snapshot, wait_idle

SLOTS, CONTEXT = 16, 2048


async def warm_up(url: str) -> None:
    """One request of every kind, so that the baseline includes every loaded model."""
    load = Load(url, clients=1, seconds=0, tag="warm-up")
    for kind in load.kinds:
        await load.once(0, kind)
    await load.close()
    if load.errors:
        raise SystemExit(f"warm-up failed: {load.errors[:3]}")


async def sampled(url: str, pid: int, load: Load) -> list[dict]:
    """Memory and request counts every 5 s while the load runs."""
    samples = []
    while not load.done.is_set():
        samples.append({**await snapshot(url, pid), "t": time.monotonic(), "n": load.finished})
        await asyncio.sleep(5)
    return samples


async def soak(url: str, home: Path, clients: int, seconds: float) -> dict:
    pid = server_pid(url)
    await warm_up(url)
    await wait_idle(url)
    baseline = await snapshot(url, pid, home)
    load = Load(url, clients, seconds)
    started = time.monotonic()
    samples_task = asyncio.create_task(sampled(url, pid, load))
    await drive(load)
    wall = time.monotonic() - started
    samples = await samples_task
    await wait_idle(url)
    after = await snapshot(url, pid, home)
    logged = Counter(access_ids(Path("/tmp/llmasos-bench-soak.log")))
    return {
        "wall_s": round(wall, 1),
        "by_kind": by_kind(load),
        "requests": len(load.records),
        "errors": len(load.errors),
        "error_examples": sorted(set(load.errors))[:5],
        "lost": sum(1 for rid in load.sent if logged[rid] == 0),
        "duplicated": sum(1 for rid in load.sent if logged[rid] > 1),
        "cancellations_not_killed": load.unkilled,
        "agent_outcomes": dict(Counter(load.agent_outcomes)),
        "memory": {
            "baseline": baseline,
            "peak_rss_mib": max([s["rss_mib"] for s in samples] + [after["rss_mib"]]),
            "after": after,
            "rss_after_over_baseline": round(after["rss_mib"] / baseline["rss_mib"], 3),
        },
        "timeline": [
            {"t_s": round(s["t"] - started, 1), "rss_mib": s["rss_mib"], "finished": s["n"]}
            for s in samples
        ],
    }


def by_kind(load: Load) -> dict[str, dict]:
    rows = {}
    for kind in load.kinds:
        latencies = [seconds for k, seconds in load.records if k == kind]
        rows[kind] = {
            "requests": len(latencies),
            "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_p99_s": round(percentile(latencies, 99), 3) if latencies else None,
        }
    return rows


async def kill_mid_load(url: str, pid: int, seconds: float = 8.0) -> dict[str, bytes]:
    """16 clients write files and stream completions; kill -9 the server after `seconds`.
    The writes it acknowledged, with their bytes."""
    load = Load(url, clients=16, seconds=60, kinds=("write", "stream"), tag="kill")
    running = asyncio.create_task(drive(load))
    await asyncio.sleep(seconds)
    os.kill(pid, signal.SIGKILL)
    load.stopped = True  # the requests in flight fail; no new ones go to the dead port
    await running
    return load.acked_files


async def verify_files(url: str, acked: dict[str, bytes]) -> int:
    """How many acknowledged files do not read back byte for byte."""
    load = Load(url, clients=1, seconds=0, tag="verify")
    changed = sum([await load.read_file(path) != content for path, content in acked.items()])
    await load.close()
    return changed


def run(args) -> dict:
    home = Path(tempfile.mkdtemp(prefix="llmasos-soak-"))
    extra = ("--log-format", "json")
    sizes = {"slots": SLOTS, "context": CONTEXT, "threads": None, "extra": extra, "home": home}
    with llmasos_server(**sizes, name="soak") as url:
        figures = asyncio.run(soak(url, home, args.clients, args.seconds))
        acked = asyncio.run(kill_mid_load(url, server_pid(url)))
    with llmasos_server(**sizes, name="soak-restarted") as url:
        unreadable = asyncio.run(verify_files(url, acked))
    figures["kill_9"] = {"acknowledged_writes": len(acked), "lost_or_changed": unreadable}
    return figures


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=300)
    args = parser.parse_args()
    figures = run(args)
    memory = figures["memory"]
    met = {
        "no_errors": figures["errors"] == 0,
        "none_lost_or_duplicated": figures["lost"] == figures["duplicated"] == 0,
        "cancellations_killed": figures["cancellations_not_killed"] == 0,
        "pages_and_swap_back_to_baseline": memory["after"]["used_pages"] == 0
        and memory["after"]["swap_bytes"] == memory["after"]["swap_files"] == 0,
        "rss_within_10_percent_of_baseline": memory["rss_after_over_baseline"] <= 1.10,
        "kill_9_lost_nothing_acknowledged": figures["kill_9"]["lost_or_changed"] == 0,
    }
    report = {
        **report_header("soak", __doc__.split("\n\n")[0], "gemma3-270m:q4_k_m"),
        "settings": {"clients": args.clients, "seconds": args.seconds, "slots": SLOTS},
        "results": figures,
        "met": met,
    }
    write_report(args.out / "soak.json", report)
    plot(args.out / "soak.png", figures)
    print({k: v for k, v in figures.items() if k != "timeline"}, met, sep="\n")


def plot(path: Path, figures: dict) -> None:
    plt = pyplot()
    timeline = figures["timeline"]
    fig, (rss, rate) = plt.subplots(1, 2, figsize=(11, 3.6))
    rss.plot([p["t_s"] for p in timeline], [p["rss_mib"] for p in timeline])
    rss.axhline(figures["memory"]["baseline"]["rss_mib"], linestyle="--", label="baseline")
    rss.axhline(figures["memory"]["after"]["rss_mib"], linestyle=":", label="after, idle")
    rss.set_title("server RSS (MiB)", fontsize=10)
    rss.legend(fontsize=8)
    pairs = list(itertools.pairwise(timeline))
    rate.plot(
        [b["t_s"] for _, b in pairs],
        [(b["finished"] - a["finished"]) / max(b["t_s"] - a["t_s"], 1e-9) for a, b in pairs],
    )
    rate.set_title("requests finished per second", fontsize=10)
    for ax in (rss, rate):
        ax.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
