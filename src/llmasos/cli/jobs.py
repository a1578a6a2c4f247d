"""`llmasos jobs`: training jobs on the server: submit (with a progress bar), ls, status, logs,
cancel, suspend, resume, rm."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from llmasos.cli.common import ApiKey, Url, console, fail, notice, server_answers
from llmasos.errors import LLMasOSError
from llmasos.jobs.remote_jobs import RemoteJobs
from llmasos.jobs.tasks import DP, ENDED, TaskState, TaskStatus, TrainingTask

jobs_app = typer.Typer(
    help="Training jobs on the server: submit, ls, status, logs, cancel, suspend, resume, rm.",
    no_args_is_help=True,
)
TaskIdArgument = Annotated[str, typer.Argument(help="The job's task id (task-...).")]
POLL_S = 1.0


@contextlib.contextmanager
def jobs_at(url: str, api_key: str | None) -> Iterator[RemoteJobs]:
    """The server's jobs; an error from it exits with its message."""
    if not server_answers(url):
        fail(f"no LLMasOS server answers at {url}; start one with `llmasos serve`")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as http:
        try:
            yield RemoteJobs(http)
        except LLMasOSError as error:
            fail(str(error))


@jobs_app.command("submit")
def jobs_submit(
    data: Annotated[Path, typer.Argument(help="JSONL of {text} or {messages} records.")],
    model: Annotated[str, typer.Option(help="The base model.")] = "gemma3-270m:q4_k_m",
    output: Annotated[str | None, typer.Option(help="Register the result as NAME[:TAG].")] = None,
    method: Annotated[str, typer.Option(help="Training method.")] = "lora",
    epochs: Annotated[int, typer.Option()] = 1,
    learning_rate: Annotated[float, typer.Option()] = 2e-4,
    batch_size: Annotated[int, typer.Option()] = 4,
    dp_epsilon: Annotated[float | None, typer.Option(help="Train with DP-SGD to this ε.")] = None,
    dp_delta: Annotated[float, typer.Option()] = 1e-5,
    max_grad_norm: Annotated[float, typer.Option(help="DP: per-sample clipping.")] = 1.0,
    detach: Annotated[bool, typer.Option(help="Print the task id and return.")] = False,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Queue a training job on DATA and follow it with a progress bar until it ends (Ctrl-C
    stops following; the job goes on)."""
    try:
        privacy = None if dp_epsilon is None else DP(dp_epsilon, dp_delta, max_grad_norm)
        task = TrainingTask(
            model=model,
            data=str(data),
            method=method,
            epochs=epochs,
            learning_rate=learning_rate,
            output=output,
            privacy=privacy,
            batch_size=batch_size,
        )
        raw = data.read_bytes()
    except (LLMasOSError, OSError) as error:
        fail(str(error))
    with jobs_at(url, api_key) as jobs:
        status = jobs.submit(task, raw)
        if detach:
            console.print(status.id)
            return
        notice(f"{status.id} queued (pid {status.pid}); Ctrl-C stops following, not the job")
        final = follow(jobs, status.id)
    show_end(final)


def follow(jobs: RemoteJobs, task_id: str) -> TaskStatus:
    """A progress bar (steps, loss, ε, time left) until the job ends; its last status."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        line = bar.add_task("queued", total=None, detail="")
        try:
            while True:
                status = jobs.status(task_id)
                bar.update(
                    line,
                    description=status.state.value,
                    total=status.total_steps or None,
                    completed=status.step,
                    detail=_detail(status),
                )
                if status.state in ENDED or status.state is TaskState.SUSPENDED:
                    return status
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            notice(f"stopped following; the job goes on: llmasos jobs status {task_id}")
            raise typer.Exit(0) from None


def _detail(status: TaskStatus) -> str:
    parts = [f"step {status.step}/{status.total_steps}"] if status.total_steps else []
    if status.loss is not None:
        parts.append(f"loss {status.loss:.4f}")
    if status.epsilon is not None:
        parts.append(f"ε {status.epsilon:.2f}")
    if status.message:
        parts.append(status.message)
    return "  ".join(parts)


def show_end(status: TaskStatus) -> None:
    if status.state is TaskState.SUCCEEDED:
        console.print(f"succeeded: serve it with `llmasos run {status.output_model}`")
    elif status.state is TaskState.FAILED:
        fail(f"{status.id} failed: {status.error}")
    else:
        console.print(f"{status.id} is {status.state.value}")


@jobs_app.command("ls")
def jobs_ls(url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """Your jobs (an admin's: everyone's)."""
    with jobs_at(url, api_key) as jobs:
        console.print(job_table(jobs.list()))


def job_table(statuses: list[TaskStatus]) -> Table:
    table = Table("TASK", "PID", "OWNER", "STATE", "MODEL", "STEP", "LOSS", "ε", "OUTPUT")
    for s in statuses:
        loss = "" if s.loss is None else f"{s.loss:.4f}"
        epsilon = "" if s.epsilon is None else f"{s.epsilon:.2f}"
        step = f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step)
        table.add_row(
            s.id, str(s.pid), s.owner, s.state.value, s.model, step, loss, epsilon,
            s.output_model or "",
        )  # fmt: skip
    return table


@jobs_app.command("status")
def jobs_status(
    task_id: TaskIdArgument, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None
) -> None:
    """The job's status as JSON: state, progress, step, loss, epsilon, eta_s, error, ..."""
    with jobs_at(url, api_key) as jobs:
        console.print_json(json.dumps(jobs.status(task_id).to_json()))


@jobs_app.command("logs")
def jobs_logs(
    task_id: TaskIdArgument,
    follow_log: Annotated[bool, typer.Option("--follow", "-f", help="Wait for new steps.")] = False,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """The job's loss (and ε) step by step."""
    with jobs_at(url, api_key) as jobs:
        last = 0
        while True:
            for entry in jobs.logs(task_id, after_step=last):
                last = entry["step"]
                loss = "-" if entry["loss"] is None else f"{entry['loss']:.4f}"
                epsilon = "" if entry.get("epsilon") is None else f"  ε {entry['epsilon']:.3f}"
                console.print(f"step {last}  epoch {entry['epoch']}  loss {loss}{epsilon}")
            if not follow_log or jobs.status(task_id).state in ENDED:
                return
            time.sleep(POLL_S)


def _signal(action: str, task_id: str, url: str, api_key: str | None) -> None:
    with jobs_at(url, api_key) as jobs:
        status = getattr(jobs, action)(task_id)
    console.print(f"{status.id}: {status.state.value}")


@jobs_app.command("cancel")
def jobs_cancel(
    task_id: TaskIdArgument, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None
) -> None:
    """Stop the job for good (after the step under way)."""
    _signal("cancel", task_id, url, api_key)


@jobs_app.command("suspend")
def jobs_suspend(
    task_id: TaskIdArgument, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None
) -> None:
    """Stop the job at a checkpoint; `resume` goes on from it."""
    _signal("suspend", task_id, url, api_key)


@jobs_app.command("resume")
def jobs_resume(
    task_id: TaskIdArgument, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None
) -> None:
    """Queue a suspended job again; it goes on from its checkpoint."""
    _signal("resume", task_id, url, api_key)


@jobs_app.command("rm")
def jobs_rm(
    task_id: TaskIdArgument, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None
) -> None:
    """Remove an ended job's data and log (its trained model stays; cancel a live job first)."""
    with jobs_at(url, api_key) as jobs:
        jobs.delete(task_id)
    console.print(f"{task_id}: deleted")
