"""`llmasos bench WORKLOAD`: measure the local embedded kernel or any OpenAI-compatible server
(llama-server, vLLM, Ollama), optionally against a second one in the same run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from llmasos.cli.common import ApiKey, console, errors, fail, notice

if TYPE_CHECKING:
    from llmasos.benchmark.runner import BenchRun
    from llmasos.benchmark.workloads import Knobs


class WorkloadName(StrEnum):
    throughput = "throughput"
    serve = "serve"
    agents = "agents"
    priority = "priority"
    swap = "swap"


SHOWN = (
    "requests",
    "errors",
    "throughput_tokens_per_s",
    "ttft_p50_s",
    "ttft_p99_s",
    "latency_p50_s",
    "tpot_p50_s",
    "prefix_hit_rate",
    "probe_ttft_loaded_over_idle",
    "exact_text_rate",
    "swap_outs",
)


def bench(
    workload: Annotated[WorkloadName, typer.Argument(help="The workload to run.")],
    url: Annotated[
        str | None,
        typer.Option(help="An OpenAI-compatible server; without it, a local `llmasos serve`."),
    ] = None,
    compare: Annotated[
        str | None, typer.Option(help="A second server: same workload, ratios first/second.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the figures here.")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the figures here.")] = None,
    quick: Annotated[bool, typer.Option(help="A small setting (seconds, not minutes).")] = False,
    requests: Annotated[int | None, typer.Option(min=1, max=10_000)] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=1024)] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, max=8192)] = None,
    rate: Annotated[
        float | None, typer.Option(min=0.01, max=1000, help="serve: requests/s (Poisson).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model to ask for (default: the server's).")
    ] = None,
    api_key: ApiKey = None,
    compare_api_key: Annotated[
        str | None, typer.Option(help="The second server's key (default: --api-key).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The server's label in the figures.")] = None,
    compare_name: Annotated[
        str | None, typer.Option(help="The second server's label in the figures.")
    ] = None,
) -> None:
    """Run a benchmark workload and print its figures (and ratios with --compare)."""
    from llmasos.benchmark.runner import BenchPlan, run_bench

    if rate is not None and workload is not WorkloadName.serve:
        fail("--rate applies to the serve workload only")
    if plot is not None and find_spec("matplotlib") is None:
        fail("--plot needs matplotlib: pip install 'llmasos[bench]'")
    for option, label in (("--name", name), ("--compare-name", compare_name)):
        if label is not None and not 0 < len(label) <= 64:
            fail(f"{option} must be 1 to 64 characters")
    sizes = {"requests": requests, "concurrency": concurrency, "max_tokens": max_tokens}
    knobs = _knobs(workload.value, quick, {**sizes, "rate": rate})
    keys = (api_key, compare_api_key or api_key)
    servers = (server_root(url), server_root(compare))
    plan = BenchPlan(workload.value, knobs, quick, *servers, model, *keys, (name, compare_name))
    if url is None:
        notice("starting a local `llmasos serve` for the run")
    try:
        with _progress() as progress:
            run = run_bench(plan, progress)
    except httpx.HTTPStatusError as error:
        fail(f"{error.request.url} answered HTTP {error.response.status_code}")
    except httpx.HTTPError as error:
        fail(f"cannot reach {error.request.url}: {error}")
    except TimeoutError:
        fail("a server sent no text for 10 minutes; see the errors above")
    _print_figures(run.report)
    _save(run, json_path, plot)


def server_root(url: str | None) -> str | None:
    """The server's root: `http://host:8000/v1/` and `http://host:8000` are the same server."""
    return None if url is None else url.rstrip("/").removesuffix("/v1")


def _knobs(workload: str, quick: bool, given: dict[str, float | None]) -> Knobs:
    """The workload's size (full or --quick), with the options given on the command line."""
    from llmasos.benchmark.workloads import SIZES

    full, small = SIZES[workload]
    return replace(small if quick else full, **{k: v for k, v in given.items() if v is not None})


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Callable[[], None]]]:
    """A progress bar per server, on stderr; yields the runner's progress callback."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("requests"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=errors, transient=False) as shown:

        def start(side: str, total: int) -> Callable[[], None]:
            task = shown.add_task(side, total=total)
            return lambda: shown.advance(task)

        yield start


def _print_figures(report: dict) -> None:
    results: dict[str, dict] = report["results"]
    table = Table(title=f"llmasos bench {report['benchmark']}: {report['settings']['in_words']}")
    table.add_column("figure")
    for side in results:
        table.add_column(side, justify="right")
    ratios = next(iter(report.get("ratios", {}).values()), None)
    if ratios is not None:
        table.add_column("ratio", justify="right")
    for name in SHOWN:
        values = [results[side].get(name) for side in results]
        if all(v is None for v in values):
            continue
        row = [name, *("-" if v is None else str(v) for v in values)]
        if ratios is not None:
            row.append(str(ratios.get(name, "-")))
        table.add_row(*row)
    console.print(table)
    for side, figures in results.items():
        for example in figures["error_examples"]:
            errors.print(f"[red]{side}:[/red] {example}", highlight=False)


def _save(run: BenchRun, json_path: Path | None, plot: Path | None) -> None:
    from llmasos.benchmark.report import write_report

    if json_path is not None:
        write_report(json_path, run.report)
    if plot is not None:
        from llmasos.benchmark.plots import plot_run

        plot_run(plot, run.report["benchmark"], run.report["results"], run.records)
        console.print(f"-> {plot}")
    if json_path is None and plot is None:
        notice("--json FILE and --plot FILE save these figures")
