"""The five workloads of `llmasos bench`, each over any OpenAI-compatible /v1/completions.

- throughput: every request sent at once; output tokens per second.
- serve: random prompts at a request rate (Poisson arrivals) or a fixed concurrency.
- agents: agents sharing a long system prompt, several turns each (prefix reuse).
- priority: urgent probes (priority 10) while background clients saturate the server; their
  time to first token under load over idle.
- swap: long generations fill the server, then urgent requests arrive and must preempt them; every
  greedy text must equal the one the same prompt gets alone.

The `priority` field is LLMasOS's (and vLLM's) extension; a server without priorities ignores it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from llmasos.benchmark.loadgen import RequestRecord
from llmasos.benchmark.prompts import (
    agent_follow_up,
    agent_opening,
    agent_system_prompt,
    random_prompts,
)
from llmasos.benchmark.session import Session

URGENT, BACKGROUND = 10, 0  # the priorities of probes and load
PROBE_TOKENS = 4
MAX_FAILURES = 3  # a background client stops after this many failed requests in a row
SWAPS = ("llmasos_swaps_total", 'direction="out"')


@dataclass(frozen=True)
class Knobs:
    """A workload's size; what each knob means per workload is in `describe`."""

    requests: int
    concurrency: int
    max_tokens: int
    rate: float | None = None  # serve: requests per second (Poisson); None: a closed loop


@dataclass
class Outcome:
    """What one workload measured on one server: request groups and workload figures."""

    wall_s: float
    groups: dict[str, list[RequestRecord]]
    figures: dict[str, float | int | None] = field(default_factory=dict)
    outside_wall: tuple[str, ...] = ()  # groups measured before the wall time began

    @property
    def records(self) -> list[RequestRecord]:
        """The records of the timed part: what throughput and the spreads are over."""
        return [r for name, rs in self.groups.items() if name not in self.outside_wall for r in rs]


def _kept(records: list[RequestRecord | None]) -> list[RequestRecord]:
    return [r for r in records if r is not None]


async def _timed(work: Awaitable[list[RequestRecord | None]]) -> tuple[list[RequestRecord], float]:
    started = time.perf_counter()
    records = await work
    return _kept(records), time.perf_counter() - started


async def throughput(session: Session, knobs: Knobs) -> Outcome:
    """Every request sent at once, on random prompts that share no prefix: output tokens/s."""
    prompts = random_prompts(knobs.requests, seed=3)
    sends = (session.send(session.body(p, knobs.max_tokens)) for p in prompts)
    records, wall = await _timed(asyncio.gather(*sends))
    return Outcome(wall, {"requests": records})


async def serve(session: Session, knobs: Knobs) -> Outcome:
    """Random prompts at a request rate (Poisson arrivals) or from a fixed number of closed-loop
    clients: TTFT, latency and throughput."""
    bodies = [session.body(p, knobs.max_tokens) for p in random_prompts(knobs.requests, seed=7)]
    if knobs.rate is None:
        work = _closed_loop(session, bodies, knobs.concurrency)
    else:
        work = _poisson(session, bodies, knobs.rate)
    records, wall = await _timed(work)
    return Outcome(wall, {"requests": records})


async def _closed_loop(session: Session, bodies: list[dict], clients: int) -> list:
    queue = list(reversed(bodies))
    records: list[RequestRecord | None] = []

    async def client() -> None:
        while queue:
            records.append(await session.send(queue.pop()))

    await asyncio.gather(*(client() for _ in range(min(clients, len(bodies)))))
    return records


async def _poisson(session: Session, bodies: list[dict], rate: float) -> list:
    rng = random.Random(11)
    tasks = []
    for body in bodies:
        tasks.append(asyncio.create_task(session.send(body)))
        await asyncio.sleep(rng.expovariate(rate))
    return list(await asyncio.gather(*tasks))


async def agents(session: Session, knobs: Knobs) -> Outcome:
    """Agents that share a long system prompt, several turns each, every turn appending the
    reply and a follow-up: prefix reuse across agents and turns."""
    system = agent_system_prompt(repeats=2 if knobs.max_tokens <= 16 else 12)
    turns = max(1, knobs.requests // knobs.concurrency)

    async def agent(index: int) -> list[RequestRecord | None]:
        conversation = system + agent_opening(index)
        records = []
        for turn in range(1, turns + 1):
            record = await session.send(session.body(conversation, knobs.max_tokens))
            records.append(record)
            if record is None:
                break
            conversation += record.text + agent_follow_up(turn)
        return records

    started = time.perf_counter()
    per_agent = await asyncio.gather(*(agent(i) for i in range(knobs.concurrency)))
    wall = time.perf_counter() - started
    later = _kept([r for records in per_agent for r in records[1:]])
    first = _kept([records[0] for records in per_agent])
    return Outcome(wall, {"first_turns": first, "later_turns": later})


async def priority(session: Session, knobs: Knobs) -> Outcome:
    """Urgent probes (priority 10) alone, then while background clients saturate the server:
    the probes' TTFT under load over idle."""
    rng = random.Random(13)
    probes = iter(random_prompts(2 * knobs.requests, seed=17, words=20))

    async def probe() -> RequestRecord | None:
        return await session.send(session.body(next(probes), PROBE_TOKENS, priority=URGENT))

    idle = _kept([await probe() for _ in range(knobs.requests)])
    stop = asyncio.Event()
    load_prompts = iter(random_prompts(100_000, seed=19))
    started = asyncio.Event()
    background: list[RequestRecord | None] = []

    async def load_client() -> None:
        failures = 0  # in a row: a client that keeps failing stops (its errors are counted)
        while not stop.is_set() and failures < MAX_FAILURES:
            body = session.body(next(load_prompts), knobs.max_tokens, priority=BACKGROUND)
            record = await session.send(body, on_text=started.set, counted=False)
            started.set()  # a failed request also ends the wait for the load
            background.append(record)
            failures = 0 if record is not None else failures + 1

    began = time.perf_counter()
    clients = [asyncio.create_task(load_client()) for _ in range(knobs.concurrency)]
    await asyncio.wait_for(started.wait(), timeout=600)
    await asyncio.sleep(0.5)  # past the first burst of prefills
    loaded = []
    for _ in range(knobs.requests):
        loaded.append(await probe())
        await asyncio.sleep(rng.uniform(0.2, 0.6))
    stop.set()
    await asyncio.gather(*clients)
    wall = time.perf_counter() - began
    groups = {"probes_idle": idle, "probes_loaded": _kept(loaded), "background": _kept(background)}
    return Outcome(wall, groups, outside_wall=("probes_idle",))


async def swap(session: Session, knobs: Knobs) -> Outcome:
    """Long generations fill the server, then urgent requests arrive and preempt them; every
    greedy text is compared with the one its prompt gets alone (asked afterwards, so that the
    timed part meets a cold prefix cache on every server)."""
    long_prompts = random_prompts(knobs.concurrency, seed=23)
    urgent_prompts = random_prompts(knobs.requests, seed=29, words=20)
    urgent_tokens = max(PROBE_TOKENS, knobs.max_tokens // 4)
    swaps_before = await session.counter(*SWAPS)
    running = [asyncio.Event() for _ in long_prompts]
    began = time.perf_counter()

    async def long_run(prompt: str, first_text: asyncio.Event) -> RequestRecord | None:
        body = session.body(prompt, knobs.max_tokens, priority=BACKGROUND)
        try:
            return await session.send(body, on_text=first_text.set)
        finally:
            first_text.set()  # also when it failed: nobody waits for it

    long_runs = [
        asyncio.create_task(long_run(p, e)) for p, e in zip(long_prompts, running, strict=True)
    ]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in running)), timeout=600)
    urgent = await asyncio.gather(
        *(session.send(session.body(p, urgent_tokens, priority=URGENT)) for p in urgent_prompts)
    )
    long_done = await asyncio.gather(*long_runs)
    wall = time.perf_counter() - began
    swaps_after = await session.counter(*SWAPS)
    asked = [(p, knobs.max_tokens) for p in long_prompts] + [
        (p, urgent_tokens) for p in urgent_prompts
    ]
    exact = 0
    for (prompt, tokens), record in zip(asked, [*long_done, *urgent], strict=True):
        alone = await session.send(session.body(prompt, tokens))
        exact += record is not None and alone is not None and record.text == alone.text
    figures = {
        "exact_text_rate": round(exact / len(asked), 4),
        "swap_outs": None if swaps_after is None else swaps_after - (swaps_before or 0),
    }
    return Outcome(wall, {"long": _kept(long_done), "urgent": _kept(urgent)}, figures)


Workload = Callable[[Session, Knobs], Awaitable[Outcome]]
WORKLOADS: dict[str, Workload] = {
    "throughput": throughput,
    "serve": serve,
    "agents": agents,
    "priority": priority,
    "swap": swap,
}
# (full, --quick) sizes of each workload
SIZES: dict[str, tuple[Knobs, Knobs]] = {
    "throughput": (Knobs(32, 32, 64), Knobs(4, 4, 8)),
    "serve": (Knobs(48, 8, 64), Knobs(4, 2, 8)),
    "agents": (Knobs(24, 8, 32), Knobs(4, 2, 8)),
    "priority": (Knobs(8, 8, 96), Knobs(2, 2, 16)),
    "swap": (Knobs(8, 8, 64), Knobs(2, 2, 16)),
}


def describe(workload: str, knobs: Knobs) -> str:
    """What `knobs` mean for `workload`, in words, for the report."""
    r, c, t = knobs.requests, knobs.concurrency, knobs.max_tokens
    return {
        "throughput": f"{r} requests sent at once, {t} output tokens each",
        "serve": (
            f"{r} requests, {t} output tokens each, "
            + (f"{knobs.rate}/s Poisson arrivals" if knobs.rate else f"{c} closed-loop clients")
        ),
        "agents": f"{c} agents, {max(1, r // c)} turns each, {t} output tokens a turn",
        "priority": f"{r} probes idle and {r} under {c} background clients of {t} tokens",
        "swap": f"{c} long generations of {t} tokens, then {r} urgent requests",
    }[workload]


def expected_requests(workload: str, knobs: Knobs) -> int:
    """How many requests the workload sends (the progress bar's total); the priority
    workload's background requests are open-ended and not counted."""
    r, c = knobs.requests, knobs.concurrency
    return {
        "throughput": r,
        "serve": r,
        "agents": c * max(1, r // c),
        "priority": 2 * r,
        "swap": 2 * (c + r),
    }[workload]
