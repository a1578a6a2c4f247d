"""The agents workload over two 1-core engine replicas on a real Ray cluster: cache-aware
routing against round-robin routing, in the same run.

A Ray cluster of a head (no CPUs) and two 1-CPU worker nodes runs on this machine inside a
network namespace of the benchmark's own (Ray binds the machine's external address otherwise).
For each routing, `llmasos serve --cluster HEAD --routing R --replicas 2` starts two fresh
replicas (empty caches) and bench/agents.py's agent workload runs through the front: 16 agents,
the same ~1500-token system prompt, 3 turns of 64 greedy tokens, each turn extending the
agent's own conversation. Rounds alternate the order of the two routings. The simulation of
8 to 256 nodes is bench/cluster_sim.py's (its own JSON says it is a simulation).

    .venv/bin/python bench/cluster.py
Writes bench/results/cluster.json and bench/results/cluster.png.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from agents import AGENTS, MAX_TOKENS, TURNS, run_workload
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from report import arguments

ROUTINGS = ("cache-aware", "round-robin")
CONTEXT = 2048
INSIDE = "LLMASOS_BENCH_IN_NAMESPACE"


def in_namespace() -> None:
    """Run this script again inside a user and network namespace with only loopback up."""
    script = " ".join([sys.executable, *map(str, sys.argv)])
    env = {**os.environ, INSIDE: "1"}
    command = [
        "unshare",
        "--user",
        "--net",
        "--map-root-user",
        "sh",
        "-c",
        f"ip link set lo up && exec {script}",
    ]
    sys.exit(subprocess.run(command, env=env, check=False).returncode)


def cluster_counters(url: str) -> dict[str, float]:
    """Prefix-cache counters summed over the replicas (fresh for each front)."""
    body = httpx.get(f"{url}/v1/cluster", timeout=60).json()
    stats = [r["stats"] for r in body["replicas"] if r["stats"]]
    hits, misses = sum(s["prefix_hits"] for s in stats), sum(s["prefix_misses"] for s in stats)
    return {
        "replica_prefix_hits": hits,
        "replica_prefix_lookups": hits + misses,
        "replica_prefix_tokens_reused": sum(s["prefix_tokens_reused"] for s in stats),
        "replica_prompt_tokens": sum(s["prompt_tokens"] for s in stats),
        "served_per_replica": [r["served"] for r in body["replicas"]],
    }


def one_run(address: str, routing: str) -> dict:
    extra = ("--cluster", address, "--routing", routing, "--replicas", "2", "--min-replicas", "2")
    with llmasos_server(slots=AGENTS, context=CONTEXT, threads=1, extra=extra, name=routing) as url:
        result = asyncio.run(run_workload(url, "gemma3-270m:q4_k_m", "agents"))
        result.update(cluster_counters(url))
    return result


def main() -> None:
    args = arguments(__doc__, repeats=2).parse_args()
    if not os.environ.get(INSIDE):
        in_namespace()
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    runs: dict[str, list[dict]] = {r: [] for r in ROUTINGS}
    try:
        for round_ in range(args.repeats):
            for routing in ROUTINGS if round_ % 2 == 0 else ROUTINGS[::-1]:
                runs[routing].append(one_run(cluster.address, routing))
                print(f"round {round_} {routing:12s} {runs[routing][-1]}", flush=True)
    finally:
        cluster.shutdown()
    write_results(args.out, runs)


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 4)


def write_results(out: Path, runs: dict[str, list[dict]]) -> None:
    keys = ("makespan_s", "throughput_tokens_per_s", "ttft_p50_s", "ttft_p99_s", "prefix_hit_rate")
    medians = {r: {k: _median(runs[r], k) for k in keys} for r in ROUTINGS}
    aware, robin = medians["cache-aware"], medians["round-robin"]
    report = {
        **report_header(
            "cluster",
            __doc__.split("\n\n")[1],
            default_model_path(Settings.from_environment().home),
        ),
        "settings": {
            "nodes": "Ray head with 0 CPUs + 2 worker nodes with 1 CPU each (ray.cluster_utils), "
            "one machine of 2 cores, inside a user+network namespace",
            "replicas": 2,
            "threads_per_replica": 1,
            "agents": AGENTS,
            "turns": TURNS,
            "max_tokens": MAX_TOKENS,
            "greedy": True,
            "context_per_slot": CONTEXT,
            "slots_per_replica": AGENTS,
            "rounds": len(runs["cache-aware"]),
            "prefix_hit_rate": "cached prompt tokens over prompt tokens, from each reply's usage",
        },
        "runs": runs,
        "medians": medians,
        "cache_aware_over_round_robin": {
            "makespan": round(aware["makespan_s"] / robin["makespan_s"], 3),
            "throughput": round(
                aware["throughput_tokens_per_s"] / robin["throughput_tokens_per_s"], 3
            ),
            "prefix_hit_rate_points": round(aware["prefix_hit_rate"] - robin["prefix_hit_rate"], 4),
        },
    }
    write_report(out / "cluster.json", report)
    bar_plot(
        out / "cluster.png",
        groups=["makespan s", "TTFT p50 s", "prefix hit rate x10"],
        series={
            r: [
                medians[r]["makespan_s"],
                medians[r]["ttft_p50_s"],
                medians[r]["prefix_hit_rate"] * 10,
            ]
            for r in ROUTINGS
        },
        title=f"{AGENTS} agents x {TURNS} turns over 2 one-core replicas on Ray: routing",
    )


if __name__ == "__main__":
    main()
