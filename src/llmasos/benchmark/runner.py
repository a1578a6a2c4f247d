"""One `llmasos bench` run: a workload against a server (the local embedded kernel, started for
the run, or any OpenAI-compatible URL), then the same workload against a second server, figures,
ratios, JSON and a PNG."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from llmasos.benchmark import workloads
from llmasos.benchmark.figures import figures_of, ratios
from llmasos.benchmark.loadgen import RequestRecord, new_client
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.report import report_header
from llmasos.benchmark.session import Session, Target, resolve_model
from llmasos.benchmark.workloads import Knobs

LOCAL_LABEL = "llmasos-local"


@dataclass(frozen=True)
class BenchPlan:
    """What to run: a workload, its size, and the servers (url None: a local `llmasos serve`)."""

    workload: str
    knobs: Knobs
    quick: bool = False
    url: str | None = None
    compare: str | None = None
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    compare_api_key: str | None = field(default=None, repr=False)
    names: tuple[str | None, str | None] = (None, None)  # the two servers' labels, if given


@dataclass
class BenchRun:
    """What a run measured: the JSON report and every side's records (for the plot)."""

    report: dict
    records: dict[str, list[RequestRecord]]


Progress = Callable[[str, int], Callable[[], None]]  # (side, total) -> advance by one


def _label(url: str) -> str:
    return urlsplit(url).netloc or url


@contextmanager
def _local_or(url: str | None, plan: BenchPlan) -> Iterator[str]:
    """`url`, or a local `llmasos serve` sized for the workload for as long as the run lasts
    (the swap workload gets exactly one slot per long generation, so urgent ones preempt)."""
    if url is not None:
        yield url
        return
    slots = plan.knobs.concurrency if plan.workload == "swap" else 16
    with llmasos_server(slots=slots, context=2048, threads=None, name="bench-local") as local:
        yield local


async def _measure(target: Target, plan: BenchPlan, advance: Callable[[], None]) -> tuple:
    model = target.model or await resolve_model(target.url, target.api_key)
    target = Target(target.label, target.url, model, target.api_key)
    async with new_client(target.url) as client:
        session = Session(target, client, advance)
        outcome = await workloads.WORKLOADS[plan.workload](session, plan.knobs)
    return target, outcome, session.errors


def run_bench(plan: BenchPlan, progress: Progress) -> BenchRun:
    """Run the plan's workload on each server in turn; ratios are first over second."""
    sides = [(plan.url, plan.api_key, plan.names[0])]
    if plan.compare:
        sides.append((plan.compare, plan.compare_api_key, plan.names[1]))
    results: dict[str, dict] = {}
    servers: dict[str, dict] = {}
    records: dict[str, list[RequestRecord]] = {}
    total = workloads.expected_requests(plan.workload, plan.knobs)
    for url, key, name in sides:
        label = name or (LOCAL_LABEL if url is None else _label(url))
        if label in results:
            label = f"{label}#2"
        with _local_or(url, plan) as address:
            target = Target(label, address, plan.model, key)
            target, outcome, errors = asyncio.run(_measure(target, plan, progress(label, total)))
        results[label] = figures_of(outcome, errors)
        servers[label] = {"url": url or "local llmasos serve", "model": target.model}
        records[label] = outcome.records
    report = {
        **report_header(
            plan.workload,
            workloads.WORKLOADS[plan.workload].__doc__ or "",
            plan.model or "server default",
        ),
        "settings": {
            "workload": plan.workload,
            "quick": plan.quick,
            **asdict(plan.knobs),
            "in_words": workloads.describe(plan.workload, plan.knobs),
            "greedy": True,
            "servers": servers,
        },
        "results": results,
    }
    if len(results) == 2:
        first, second = results
        report["ratios"] = {f"{first}_over_{second}": ratios(results[first], results[second])}
    return BenchRun(report, records)
