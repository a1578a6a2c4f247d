"""A discrete-event SIMULATION of a compute pool of 8 to 256 engine replicas: no engine, Ray or
network runs. The pool's policies are the real code (llmasos.cluster's router and scaler); the
engine is a model of ours, fitted to its measured speed.

Engine model: continuous batching as the kernel does it, up to 16 sequences; a step decodes a
token for each running sequence plus up to 512 prompt tokens and takes base + per_seq * decodes
+ prefill_s_per_token * prefill_tokens seconds: an affine fit through the measured step times at
batch 1 and 16 (results/throughput.json) and the q8_0 prefill speed (results/prefill.json), or
EngineCosts' defaults without them. A replica's prefix cache is an LRU radix tree of 16 x 4096
tokens; a prompt prefills what its longest cached prefix does not cover. A token is 4 characters.

Workload: agents, each with a system prompt of one of 12 families (popular ones more often) and
3-8 turns; a turn's prompt is the system prompt, the history and a new message; the agent
waits for the reply, thinks, and sends the next turn. (a) Routing: 8 to 256 fixed replicas, 4
agents each starting within 30 s; cache-aware against round robin. (b) Autoscaling: agents
arrive by a bursty trace; every 10 s the scaler sets the replica count (a new replica serves
after 15 s, a removed one drains first), for alpha 0.2, 0.5 and 1.0.

    .venv/bin/python bench/cluster_sim.py
Writes bench/results/cluster_sim.json and .png.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cluster_model import (
    CHARS_PER_TOKEN,
    KV_TOKENS,
    MAX_BATCH_TOKENS,
    MAX_RUNNING,
    EngineCosts,
    PoolSim,
    Workload,
    make_agents,
    measured_costs,
    summarize,
)
from llmasos.benchmark.report import write_report
from llmasos.cluster.router import (
    CacheAwareRouter,
    RoundRobinRouter,
    Router,
)
from llmasos.cluster.scaler import PoolLoad, Scaler, ScalerConfig, ScaleTargets, demand_from
from report import arguments

# The autoscaler's offered load: (time s, new agents a second), linear in between.
TRACE = ((0, 1), (120, 1), (150, 6), (300, 6), (330, 1), (420, 1), (430, 5), (490, 5), (500, 1))
TRACE_END_S = 600


def new_router(policy: str) -> Router:
    if policy == "round_robin":
        return RoundRobinRouter()
    return CacheAwareRouter(max_chars_per_replica=KV_TOKENS * CHARS_PER_TOKEN)


def run_routing(nodes: int, policy: str, costs: EngineCosts, seed: int) -> dict[str, float]:
    """A fixed pool of `nodes` replicas; 4 agents a replica, starting within 30 s."""
    sim = PoolSim(costs, new_router(policy), seed)
    for _ in range(nodes):
        sim.add_replica()
    rng = random.Random(seed)
    sim.run(make_agents(sim.workload, [rng.uniform(0, 30) for _ in range(4 * nodes)], seed))
    return summarize(sim.done)


def agent_starts(seed: int) -> list[float]:
    """Agents' start times: a Poisson process whose rate follows TRACE (by thinning)."""
    rng = random.Random(seed)
    times, rates = zip(*TRACE, strict=True)
    starts, now, peak = [], 0.0, max(rates)
    while (now := now + rng.expovariate(peak)) < TRACE_END_S:
        if rng.random() * peak < np.interp(now, times, rates):
            starts.append(now)
    return starts


@dataclass
class Autoscaling:
    """Every interval_s: measure the pool, ask the scaler, start or drain replicas."""

    sim: PoolSim
    scaler: Scaler
    interval_s: float = 10.0
    startup_s: float = 15.0
    pending: int = 0  # replicas starting
    cancelled: int = 0  # starts called off before they finished
    seen: int = 0  # first tokens already measured
    timeline: list[dict[str, float]] = field(default_factory=list)

    def tick(self, now: float) -> None:
        sim, ready = self.sim, list(self.sim.ready.values())
        window, self.seen = sim.first_tokens[self.seen :], len(sim.first_tokens)
        running, queued = sum(len(r.running) for r in ready), sum(len(r.waiting) for r in ready)
        p50 = float(np.median(window)) if window else None
        load = PoolLoad(len(ready), running, queued, p50)
        current = len(ready) + self.pending
        desired = self.scaler.decide(current, load)
        demand = round(demand_from(load, self.scaler.config.targets), 2)
        serving = len(ready) + len(sim.draining)
        in_flight = running + queued
        self.timeline.append(
            {"t": now, "demand": demand, "current": current, "desired": desired}
            | {"serving": serving, "in_flight": in_flight}
        )
        if desired > current:
            self.pending += desired - current
            for _ in range(desired - current):
                sim.at(now + self.startup_s, self.started)
        elif desired < current:
            self._shrink(current - desired)
        if sim.agents_left:
            sim.at(now + self.interval_s, self.tick)

    def started(self, now: float) -> None:
        if self.cancelled:
            self.cancelled -= 1
        else:
            self.pending -= 1
            self.sim.add_replica()

    def _shrink(self, count: int) -> None:
        """Call off starting replicas first, then drain the least loaded ready ones."""
        called_off = min(count, self.pending)
        self.pending, self.cancelled = self.pending - called_off, self.cancelled + called_off
        sim = self.sim
        idle_first = sorted(sim.ready.values(), key=lambda r: (r.load().in_flight, r.replica_id))
        for replica in idle_first[: count - called_off]:
            sim.draining[replica.replica_id] = sim.ready.pop(replica.replica_id)
            if not replica.busy:
                sim.remove(replica)


def run_autoscaling(alpha: float, costs: EngineCosts, seed: int) -> dict:
    """The bursty trace on a pool that starts at 8 replicas and may grow to 256."""
    targets = ScaleTargets(requests_per_replica=8, ttft_s=10.0)
    scaler = Scaler(ScalerConfig(targets, alpha, low=8, high=256))
    sim = PoolSim(costs, new_router("cache_aware"), seed)
    for _ in range(scaler.config.low):
        sim.add_replica()
    scaling = Autoscaling(sim, scaler)
    sim.at(scaling.interval_s, scaling.tick)
    sim.run(make_agents(sim.workload, agent_starts(seed), seed))
    timeline = scaling.timeline
    needed = [max(1, math.ceil(p["demand"])) for p in timeline]
    gaps = [abs(p["serving"] - n) / n for p, n in zip(timeline, needed, strict=True)]
    return {
        **summarize(sim.done),
        "replica_seconds": sum(p["serving"] for p in timeline) * scaling.interval_s,
        "peak_replicas": max(p["serving"] for p in timeline),
        "scale_changes": sum(p["desired"] != p["current"] for p in timeline),
        "mean_relative_gap_to_demand": round(float(np.mean(gaps)), 3),
        "timeline": timeline,
    }


def run_simulation(
    costs: EngineCosts | None = None,
    nodes: tuple[int, ...] = (8, 32, 128, 256),
    alphas: tuple[float, ...] = (0.2, 0.5, 1.0),
    seed: int = 15,
) -> dict:
    """Both experiments; costs default to the measured ones (see measured_costs)."""
    costs, source = (costs, "given") if costs else measured_costs()
    started = time.perf_counter()
    policies = ("cache_aware", "round_robin")
    routing = {str(n): {p: run_routing(n, p, costs, seed) for p in policies} for n in nodes}
    scaling = {str(alpha): run_autoscaling(alpha, costs, seed) for alpha in alphas}
    settings = {"max_running": MAX_RUNNING, "max_batch_tokens": MAX_BATCH_TOKENS}
    settings |= {"kv_tokens": KV_TOKENS, "chars_per_token": CHARS_PER_TOKEN, "seed": seed}
    return {
        "benchmark": "cluster_sim",
        "simulation": True,
        "description": " ".join(__doc__.split("\n\n")[0].split()),
        "date": time.strftime("%Y-%m-%d"),
        "engine_costs": {**asdict(costs), "source": source},
        "workload": asdict(Workload()),
        "settings": settings | {"trace_agents_per_s": TRACE, "trace_end_s": TRACE_END_S},
        "routing": routing,
        "autoscaling": scaling,
        "wall_s": round(time.perf_counter() - started, 1),
    }


def plot(report: dict, path: Path) -> None:
    """Hit rate and latency by pool size; replicas against demand over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hits, latency, scale) = plt.subplots(1, 3, figsize=(15, 4.2))
    sizes = [int(n) for n in report["routing"]]
    for policy, style in (("cache_aware", "o-C0"), ("round_robin", "s--C1")):
        runs = [report["routing"][str(n)][policy] for n in sizes]
        hits.plot(sizes, [r["prefix_hit_rate"] for r in runs], style, label=policy)
        for stat, alpha in (("p99", 1.0), ("mean", 0.4)):
            values = [r[f"latency_{stat}_s"] for r in runs]
            latency.plot(sizes, values, style, alpha=alpha, label=f"{policy} {stat}")
    for ax, title in ((hits, "prefix hit rate"), (latency, "end-to-end latency (s)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set(xlabel="replicas", title=title)
        ax.legend(fontsize=8)
    for alpha, run in report["autoscaling"].items():
        t = [p["t"] for p in run["timeline"]]
        line = scale.plot(t, [p["serving"] for p in run["timeline"]], label=f"replicas a={alpha}")
        demand = [p["demand"] for p in run["timeline"]]
        scale.plot(t, demand, ":", color=line[0].get_color(), label=f"R_demand a={alpha}")
    scale.set(xlabel="simulated time (s)", title="autoscaler: replicas and R_demand")
    scale.legend(fontsize=7)
    fig.suptitle("SIMULATION of a compute pool (no engine ran)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    args = arguments(__doc__, repeats=None).parse_args()
    report = run_simulation()
    write_report(args.out / "cluster_sim.json", report)
    plot(report, args.out / "cluster_sim.png")
    for n, runs in report["routing"].items():
        print(
            f"{n} replicas, (hit rate, p99 latency):",
            {p: (r["prefix_hit_rate"], r["latency_p99_s"]) for p, r in runs.items()},
        )
    for alpha, run in report["autoscaling"].items():
        print(f"alpha {alpha}:", {k: v for k, v in run.items() if k != "timeline"})


if __name__ == "__main__":
    main()
