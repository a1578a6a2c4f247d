"""The engine and pool model of bench/cluster_sim.py's SIMULATION (no engine, Ray or network
runs): replicas that batch as the kernel does, with step times fitted to the real engine's
measured speed, a prefix cache per replica, agents and their requests, and a pool that routes
with llmasos.cluster's real router. See cluster_sim.py's docstring for the model's terms.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmasos.cluster.router import (
    PrefixTree,
    ReplicaLoad,
    Router,
)

CHARS_PER_TOKEN = 4
MAX_RUNNING, MAX_BATCH_TOKENS, KV_TOKENS = 16, 512, 16 * 4096
RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class EngineCosts:
    """One replica's step time: decode cost affine in the batch size, prefill per token."""

    prefill_s_per_token: float = 0.0022
    decode_s_batch1: float = 0.030  # one step at batch 1
    decode_s_per_seq_batch16: float = 0.019  # one step at batch 16, divided by 16

    def step_s(self, decodes: int, prefill_tokens: int) -> float:
        per_seq = (16 * self.decode_s_per_seq_batch16 - self.decode_s_batch1) / 15
        base = self.decode_s_batch1 - per_seq
        return base + per_seq * decodes + self.prefill_s_per_token * prefill_tokens


def measured_costs(results: Path = RESULTS) -> tuple[EngineCosts, str]:
    """Costs from the throughput and prefill benchmarks' results, and where they came from."""
    try:
        throughput = json.loads((results / "throughput.json").read_text())
        prefill = json.loads((results / "prefill.json").read_text())
    except (OSError, ValueError):
        return EngineCosts(), "EngineCosts defaults (no measured results found)"
    step = {
        r["concurrency"]: r["kernel_profile"]["ms_per_step"] / 1e3 for r in throughput["results"]
    }
    q8 = next(r for r in prefill["results"] if r["kv_type"] == "q8_0" and not r["tiled_mm"])
    source = (
        f"throughput.json ({throughput['commit']}): the kernel's ms_per_step at 1 and 16 "
        f"processes; prefill.json ({prefill['commit']}): our engine's q8_0 prefill of 512 "
        f"tokens, {q8['engine']['512']} tokens/s"
    )
    return EngineCosts(1 / q8["engine"]["512"], step[1], step[16] / 16), source


@dataclass(frozen=True)
class Workload:
    """The agents' shape: sizes in tokens, think time in seconds."""

    families: int = 12
    system_tokens: tuple[int, int] = (400, 800)
    user_tokens: tuple[int, int] = (30, 120)
    reply_tokens: tuple[int, int] = (16, 64)
    turns: tuple[int, int] = (3, 8)
    think_s: float = 3.0


@dataclass
class Agent:
    family: int
    start_s: float
    turns: list[tuple[str, str, float]]  # user message, reply, think time after the reply
    history: str = ""


@dataclass(slots=True)
class Request:
    agent: Agent
    prompt: str
    reply: str
    arrival: float
    decode_left: int
    prompt_tokens: int = 0
    prefill_left: int = 0
    cached_tokens: int = 0
    first_token_at: float = math.nan
    done_at: float = math.nan


def text(rng: random.Random, tokens: int) -> str:
    return rng.randbytes(tokens * CHARS_PER_TOKEN // 2).hex()


def make_agents(workload: Workload, starts: list[float], seed: int) -> list[Agent]:
    """One agent per start time; its turns depend on the seed and its index, not on routing."""
    weights = [1 / (k + 1) for k in range(workload.families)]
    agents = []
    for index, start in enumerate(starts):
        rng = random.Random(seed * 1_000_003 + index)
        turns = [
            (
                text(rng, rng.randint(*workload.user_tokens)),
                text(rng, rng.randint(*workload.reply_tokens)),
                rng.expovariate(1 / workload.think_s),
            )
            for _ in range(rng.randint(*workload.turns))
        ]
        agents.append(Agent(rng.choices(range(workload.families), weights)[0], start, turns))
    return agents


class SimReplica:
    """One engine replica: continuous batching over a simulated prefix cache. Between events
    the batch is fixed, so a run of decode steps is one event, cut short at the next step
    boundary when a request arrives that could join."""

    def __init__(self, replica_id: str, sim: PoolSim) -> None:
        self.replica_id, self.sim = replica_id, sim
        self.cache = PrefixTree(KV_TOKENS * CHARS_PER_TOKEN)
        self.running: list[Request] = []
        self.waiting: deque[Request] = deque()
        self.busy, self.version = False, 0
        self.start, self.step_s, self.steps = 0.0, 0.0, 0
        self.chunks: list[tuple[Request, int]] = []  # this step's prefill: request, tokens
        self.decoding: list[Request] = []

    def load(self) -> ReplicaLoad:
        return ReplicaLoad(self.replica_id, len(self.running), len(self.waiting))

    def enqueue(self, request: Request, now: float) -> None:
        self.waiting.append(request)
        if not self.busy:
            self._plan(now)
        elif len(self.running) < MAX_RUNNING and not self.chunks:
            done = max(0, math.ceil((now - self.start) / self.step_s - 1e-9))
            if done < self.steps:
                self.steps, self.version = done, self.version + 1
                self.sim.at(self.start + done * self.step_s, self._end, self.version)

    def _plan(self, now: float) -> None:
        while self.waiting and len(self.running) < MAX_RUNNING:
            request = self.waiting.popleft()
            held = self.cache.match(request.prompt).get("kv", 0) // CHARS_PER_TOKEN
            request.cached_tokens = min(held, request.prompt_tokens - 1)
            request.prefill_left = request.prompt_tokens - request.cached_tokens
            self.running.append(request)
        if not self.running:
            self.busy = False
            return
        self.decoding = [r for r in self.running if r.prefill_left == 0]
        budget, self.chunks = MAX_BATCH_TOKENS - len(self.decoding), []
        for request in (r for r in self.running if r.prefill_left > 0):
            if budget > 0:
                self.chunks.append((request, min(request.prefill_left, budget)))
                budget -= self.chunks[-1][1]
        prefill = sum(tokens for _, tokens in self.chunks)
        self.steps = 1 if self.chunks else min(r.decode_left for r in self.decoding)
        self.step_s = self.sim.costs.step_s(len(self.decoding), prefill)
        self.busy, self.start, self.version = True, now, self.version + 1
        self.sim.at(now + self.steps * self.step_s, self._end, self.version)

    def _end(self, now: float, version: int) -> None:
        if version != self.version:
            return
        for request in self.decoding:
            request.decode_left -= self.steps
        for request, tokens in self.chunks:
            request.prefill_left -= tokens
            if request.prefill_left == 0:  # the prompt's last logits give the first token
                request.first_token_at = now
                request.decode_left -= 1
                self.cache.insert("kv", request.prompt)
                self.sim.first_tokens.append(now - request.arrival)
        finished = [r for r in self.running if r.decode_left == 0]
        self.running = [r for r in self.running if r.decode_left > 0]
        for request in finished:
            request.done_at = now
            self.cache.insert("kv", request.prompt + request.reply)
        self._plan(now)
        for request in finished:
            self.sim.finished(request, self, now)


class PoolSim:
    """The event loop: agents' turns arrive, are routed to ready replicas and served."""

    def __init__(self, costs: EngineCosts, router: Router, seed: int) -> None:
        self.costs, self.router, self.workload = costs, router, Workload()
        rng = random.Random(seed)
        sizes = [rng.randint(*self.workload.system_tokens) for _ in range(self.workload.families)]
        self.systems = [text(rng, tokens) for tokens in sizes]
        self._events: list[tuple[float, int, Callable, tuple]] = []
        self._order, self._ids = itertools.count(), itertools.count()
        self.ready: dict[str, SimReplica] = {}
        self.draining: dict[str, SimReplica] = {}
        self.done: list[Request] = []
        self.first_tokens: list[float] = []  # seconds to first token, in order of occurrence
        self.agents_left = 0

    def at(self, when: float, action: Callable, *args: object) -> None:
        heapq.heappush(self._events, (when, next(self._order), action, args))

    def run(self, agents: list[Agent]) -> None:
        self.agents_left = len(agents)
        for agent in agents:
            self.at(agent.start_s, self.turn, agent)
        while self._events:
            when, _, action, args = heapq.heappop(self._events)
            action(when, *args)

    def add_replica(self) -> None:
        replica_id = f"r{next(self._ids):03d}"
        self.ready[replica_id] = SimReplica(replica_id, self)

    def turn(self, now: float, agent: Agent) -> None:
        user, reply, _ = agent.turns[0]
        prompt = self.systems[agent.family] + agent.history + user
        request = Request(agent, prompt, reply, now, len(reply) // CHARS_PER_TOKEN)
        request.prompt_tokens = len(prompt) // CHARS_PER_TOKEN
        replica_id = self.router.choose(prompt, [r.load() for r in self.ready.values()])
        self.router.record(replica_id, prompt)
        self.ready[replica_id].enqueue(request, now)

    def finished(self, request: Request, replica: SimReplica, now: float) -> None:
        self.done.append(request)
        agent = request.agent
        user, reply, think_s = agent.turns.pop(0)
        agent.history += user + reply
        if agent.turns:
            self.at(now + think_s, self.turn, agent)
        else:
            self.agents_left -= 1
        if replica.replica_id in self.draining and not replica.busy:
            self.remove(replica)

    def remove(self, replica: SimReplica) -> None:
        del self.draining[replica.replica_id]
        self.router.forget(replica.replica_id)


def summarize(done: list[Request]) -> dict[str, float]:
    """Prefix hit rate (cached prompt tokens over all prompt tokens) and latency figures."""
    ttft = np.array([r.first_token_at - r.arrival for r in done])
    latency = np.array([r.done_at - r.arrival for r in done])
    cached = sum(r.cached_tokens for r in done)
    return {
        "requests": len(done),
        "prefix_hit_rate": round(cached / sum(r.prompt_tokens for r in done), 4),
        "ttft_mean_s": round(float(ttft.mean()), 2),
        "ttft_p99_s": round(float(np.percentile(ttft, 99)), 2),
        "latency_mean_s": round(float(latency.mean()), 2),
        "latency_p99_s": round(float(np.percentile(latency, 99)), 2),
        "last_reply_s": round(max(r.done_at for r in done), 1),
    }
