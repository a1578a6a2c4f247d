"""Commands that run and watch processes: run, chat, ps, kill, top.

`run` and `chat` use the server at $LLMASOS_URL when one answers, and an in-process kernel
otherwise; `ps`, `kill` and `top` need a server.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from llmasos.cli.common import (
    DEFAULT_URL,
    ApiKey,
    Model,
    Url,
    console,
    fail,
    notice,
    remote_client,
    server_answers,
)
from llmasos.cli.voice import Voice, play_or_keep
from llmasos.errors import LLMasOSError
from llmasos.jobs.tasks import ENDED, TaskStatus

if TYPE_CHECKING:
    from llmasos.client import Client
    from llmasos.kernel.process import ProcessInfo
    from llmasos.kernel.stats import KernelStatus, MemoryReport

MaxTokens = Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens to generate.")]
Temperature = Annotated[float, typer.Option(help="0 for greedy decoding.")]
Seed = Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")]
Local = Annotated[bool, typer.Option("--local", help="Run in-process even if a server answers.")]


def session_client(url: str, api_key: str | None, *, local: bool, model: str | None) -> Client:
    """A Client on the server at `url` if one answers (and not `local`), else in-process."""
    from llmasos.client import Client

    if not local and server_answers(url):
        return Client(base_url=url, api_key=api_key)
    notice(f"no server at {url}; running in-process")
    return Client(model=model)


def echo_stream(pieces: Iterable[str]) -> str:
    """Write pieces to stdout as they come, then end the line; the text written."""
    text = []
    for piece in pieces:
        text.append(piece)
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return "".join(text)


def run(
    words: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[MODEL] PROMPT",
            help="The text to continue, after the model to run it on (or give --model).",
        ),
    ] = None,
    max_tokens: MaxTokens = 128,
    temperature: Temperature = 0.8,
    seed: Seed = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop before this text.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first (priority policy).")] = 0,
    model: Model = None,
    audio: Annotated[
        Path | None, typer.Option(help="Take the prompt from this recording (transcribed).")
    ] = None,
    voice: Annotated[bool, typer.Option(help="Speak the continuation aloud.")] = False,
    voice_file: Annotated[
        Path | None, typer.Option(help="With --voice: write the speech here (WAV), not play it.")
    ] = None,
    local: Local = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Generate a continuation of PROMPT and stream it to the terminal (`llmasos run PROMPT`,
    or `llmasos run MODEL PROMPT`); `--audio FILE` takes the prompt from speech, `--voice`
    speaks the continuation."""
    try:
        speech = Voice(None if local or not server_answers(url) else url, api_key)
        model, prompt = _model_and_prompt(words or [], model, audio, speech)
        with session_client(url, api_key, local=local, model=model) as client:
            pieces = client.generate_text(
                prompt,
                model=model,
                stream=True,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
                stop=stop,
                priority=priority,
            )
            sys.stdout.write(prompt)
            text = echo_stream(pieces)
        if voice or voice_file:
            notice(play_or_keep(speech.speech(text.strip() or prompt), voice_file))
    except LLMasOSError as error:
        fail(str(error))


def _model_and_prompt(
    words: list[str], model: str | None, audio: Path | None, speech: Voice
) -> tuple[str | None, str]:
    """(model, prompt) from run's arguments: PROMPT, or MODEL PROMPT (then not --model too);
    with --audio, [MODEL] and the recording's transcript."""
    if audio is not None and len(words) <= 1 and not (words and model):
        return (words[0] if words else model), speech.transcript(audio)
    if audio is None and len(words) == 1:
        return model, words[0]
    if audio is None and len(words) == 2 and model is None:
        return words[0], words[1]
    fail(
        "give the prompt as one argument (quote it), after the model if --model is not given; "
        "with --audio, give no prompt"
    )


def chat(
    system: Annotated[str | None, typer.Option(help="A system message to start with.")] = None,
    max_tokens: MaxTokens = 256,
    temperature: Temperature = 0.7,
    seed: Seed = None,
    model: Model = None,
    local: Local = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Chat in the terminal. /reset forgets the conversation; /exit or Ctrl-D quits."""
    opening: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    history = list(opening)
    try:
        with session_client(url, api_key, local=local, model=model) as client:
            for line in _lines("> "):
                if line == "/exit":
                    break
                if line == "/reset":
                    history = list(opening)
                    continue
                history.append({"role": "user", "content": line})
                pieces = client.chat(
                    history,
                    model=model,
                    stream=True,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    seed=seed,
                )
                reply: list[str] = []
                echo_stream(_recording(pieces, reply))
                history.append({"role": "assistant", "content": "".join(reply).strip()})
    except LLMasOSError as error:
        fail(str(error))


def _lines(prompt: str) -> Iterator[str]:
    """Non-empty, stripped input lines until end of input."""
    while True:
        try:
            line = input(prompt).strip()
        except EOFError:
            return
        if line:
            yield line


def _recording(pieces: Iterable[str], into: list[str]) -> Iterator[str]:
    for piece in pieces:
        into.append(piece)
        yield piece


def process_table(rows: Iterable[ProcessInfo]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("PID", "OWNER", "STATE", "PRIO", "PROMPT", "OUTPUT", "PREEMPT", "FINISH"):
        table.add_column(column, justify="right" if column not in ("OWNER", "STATE") else "left")
    for row in rows:
        table.add_row(
            str(row.pid),
            row.owner,
            row.state.value,
            str(row.priority),
            str(row.prompt_tokens),
            f"{row.output_tokens}/{row.max_tokens}",
            str(row.preemptions),
            row.finish_reason.value if row.finish_reason else "",
        )
    return table


def ps(
    all_processes: Annotated[bool, typer.Option("--all", "-a", help="Include ended ones.")] = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """List the server's processes, agents and training jobs (live ones; --all for ended ones
    too)."""
    from llmasos.cli.agents import Api, agent_table
    from llmasos.cli.jobs import job_table

    try:
        with remote_client(url, api_key) as client:
            rows = [r for r in client.ps() if all_processes or r.state.value != "terminated"]
    except LLMasOSError as error:
        fail(str(error))
    console.print(process_table(rows))
    agents = Api(url, api_key).call("GET", "/v1/agents", params={"all": all_processes})
    if agents["data"]:
        console.print(agent_table(agents))
    jobs = [TaskStatus.from_json(j) for j in Api(url, api_key).call("GET", "/v1/tasks")["data"]]
    jobs = [j for j in jobs if all_processes or j.state not in ENDED]
    if jobs:
        console.print(job_table(jobs))


def kill(
    pid: Annotated[int, typer.Argument(help="The process to kill.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Kill process PID on the server."""
    try:
        with remote_client(url, api_key) as client:
            client.process(pid).kill()
    except LLMasOSError as error:
        fail(str(error))
    console.print(f"killed pid {pid}")


def top_header(status: KernelStatus, memory: MemoryReport, rate: float) -> Text:
    mib = 2**20
    lookups = memory.prefix_hits + memory.prefix_misses
    lines = [
        f"{status.model}  policy {status.policy}  up {status.uptime_s:.0f}s  {rate:.1f} tok/s  "
        f"generated {status.generated_tokens}  swaps out/in {status.swap_outs}/{status.swap_ins}",
        "processes: " + "  ".join(f"{k} {v}" for k, v in sorted(status.processes.items())),
        f"KV pages of {memory.page_size} tokens: used {memory.used_pages}  cached "
        f"{memory.cached_pages}  free {memory.free_pages}/{memory.total_pages}  slots "
        f"{memory.owned_slots} owned, {memory.cached_slots} cached, {memory.free_slots} free",
        f"prefix cache: {memory.prefix_hits}/{lookups} hits, {memory.prefix_tokens_reused} "
        f"tokens reused  swap: {memory.swap_ram_bytes / mib:.1f} MiB RAM, "
        f"{memory.swap_disk_bytes / mib:.1f} MiB disk",
    ]
    return Text("\n".join(lines))


def top(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    iterations: Annotated[int, typer.Option(help="Refreshes before exiting (0: forever).")] = 0,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """A live view of the server: processes, agents, KV memory and tokens/s. Ctrl-C quits."""
    from llmasos.cli.agents import Api, agent_table

    agents = Api(url, api_key)
    try:
        with (
            remote_client(url, api_key) as client,
            Live(console=console, auto_refresh=False) as live,
        ):
            previous = client.status()
            count = 0
            while not iterations or count < iterations:
                time.sleep(interval if count else 0)
                status = client.status()
                elapsed = max(status.uptime_s - previous.uptime_s, 1e-9)
                rate = (status.generated_tokens - previous.generated_tokens) / elapsed
                previous = status
                rows = [r for r in client.ps() if r.state.value != "terminated"]
                header = top_header(status, client.memory(), rate)
                listing = agents.call("GET", "/v1/agents")
                tables = [process_table(rows)] + ([agent_table(listing)] if listing["data"] else [])
                live.update(Group(header, *tables), refresh=True)
                count += 1
    except KeyboardInterrupt:
        pass
    except LLMasOSError as error:
        fail(str(error))
