"""`llmasos fs`: the server's file system as the API key's owner: ls, cat, put (--index),
log, diff, rollback, rm, mv, stat, grant, revoke, grants, usage, search."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from llmasos.cli.common import ApiKey, Url, console, fail, remote_client
from llmasos.errors import LLMasOSError

fs_app = typer.Typer(
    help="Files on the server: ls, cat, put, log, diff, rollback, rm, mv, grant, revoke.",
    no_args_is_help=True,
)
FilePath = Annotated[str, typer.Argument(help="A path (~NAMESPACE/path for another's).")]
T = TypeVar("T")


def _run(url: str, api_key: str | None, action: Callable[[Any], T]) -> T:
    """`action(client)`, exiting with the server's message on an error."""
    client = remote_client(url, api_key)
    try:
        return action(client)
    except LLMasOSError as error:
        fail(str(error))
    finally:
        client.close()


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


@fs_app.command("ls")
def fs_ls(
    prefix: Annotated[str, typer.Argument(help="A folder (default: your whole namespace).")] = "",
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """List the files at or under PREFIX."""
    files = _run(url, api_key, lambda c: c.fs.list(prefix))
    table = Table("PATH", "VERSION", "SIZE", "MODIFIED", "AUTHOR", box=None)
    for info in files:
        table.add_row(escape(info.path), str(info.version), str(info.size), _when(info.modified_at),
                      info.author)  # fmt: skip
    console.print(table)


@fs_app.command("cat")
def fs_cat(
    path: FilePath,
    version: Annotated[int | None, typer.Option(help="An older version.")] = None,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Write the file's content (or VERSION's) to standard output."""
    data = _run(url, api_key, lambda c: c.fs.read(path, version))
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@fs_app.command("put")
def fs_put(
    path: FilePath,
    source: Annotated[
        str, typer.Argument(help="A local file to upload, or - for standard input.")
    ] = "-",
    expected_version: Annotated[
        int | None,
        typer.Option(help="Refuse (conflict) unless the file is at this version; 0: must be new."),
    ] = None,
    index: Annotated[
        bool, typer.Option(help="Also chunk the text into your memory, for `search`.")
    ] = False,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Store SOURCE as the next version of PATH (and with --index, make it searchable)."""
    if source == "-":
        data = sys.stdin.buffer.read()
    elif Path(source).is_file():
        data = Path(source).read_bytes()
    else:
        fail(f"source: {source} is not a file (give - to read standard input)")
    version = _run(url, api_key, lambda c: c.fs.write(path, data, expected_version))
    console.print(f"{path}: version {version} ({len(data)} bytes)", markup=False)
    if index:
        report = _run(url, api_key, lambda c: c.agent_memory().index(path))
        done = "already indexed" if report.already_indexed else "indexed"
        summary = f"{path}@{report.version}: {done}, {report.chunks} chunks in your memory"
        console.print(summary, markup=False)


@fs_app.command("search")
def fs_search(
    query: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    k: Annotated[int, typer.Option(help="How many passages.")] = 5,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Search the documents you indexed (and your other archival memory) by meaning."""
    for hit in _run(url, api_key, lambda c: c.agent_memory().search(query, k)):
        similarity = 1 - (hit.distance or 0)
        console.print(f"[bold]{similarity:.3f}[/bold] {escape(hit.text)}", highlight=False)


@fs_app.command("log")
def fs_log(path: FilePath, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """The file's versions, oldest first."""
    versions = _run(url, api_key, lambda c: c.fs.history(path))
    table = Table("VERSION", "SIZE", "WHEN", "AUTHOR", "", box=None)
    for info in versions:
        table.add_row(str(info.version), str(info.size), _when(info.modified_at), info.author,
                      "deleted" if info.deleted else "")  # fmt: skip
    console.print(table)


@fs_app.command("diff")
def fs_diff(
    path: FilePath,
    from_version: Annotated[int, typer.Argument(help="The older version.")],
    to_version: Annotated[int | None, typer.Argument(help="The newer (default: latest).")] = None,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """A unified diff between two versions."""
    console.print(_run(url, api_key, lambda c: c.fs.diff(path, from_version, to_version)),
                  end="", markup=False, highlight=False)  # fmt: skip


@fs_app.command("rollback")
def fs_rollback(
    path: FilePath,
    version: Annotated[int, typer.Argument(help="The version whose content comes back.")],
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Write VERSION's content as the newest version."""
    new = _run(url, api_key, lambda c: c.fs.rollback(path, version))
    console.print(f"{path}: version {new} (the content of version {version})", markup=False)


@fs_app.command("rm")
def fs_rm(
    path: FilePath,
    purge: Annotated[bool, typer.Option(help="Also drop the whole history (frees quota).")] = False,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Delete PATH (a new version; `rollback` restores it), or --purge it with its history."""
    if purge:
        freed = _run(url, api_key, lambda c: c.fs.purge(path))
        console.print(f"{path}: purged, {freed} bytes freed", markup=False)
        return
    version = _run(url, api_key, lambda c: c.fs.delete(path))
    console.print(f"{path}: deleted as version {version}", markup=False)


@fs_app.command("mv")
def fs_mv(
    source: FilePath,
    destination: Annotated[str, typer.Argument(help="The new path.")],
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Rename SOURCE to DESTINATION (atomically, within one owner's namespaces)."""
    version = _run(url, api_key, lambda c: c.fs.move(source, destination))
    console.print(f"{source} -> {destination} (version {version})", markup=False)


@fs_app.command("stat")
def fs_stat(path: FilePath, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """The latest version's metadata."""
    info = _run(url, api_key, lambda c: c.fs.stat(path))
    for name, value in info.to_json().items():
        console.print(f"{name}: {value}", markup=False, highlight=False)


@fs_app.command("grant")
def fs_grant(
    prefix: Annotated[str, typer.Argument(help="A folder of yours ('' for all of it).")],
    to: Annotated[str, typer.Argument(help="An owner, or OWNER:AGENT.")],
    mode: Annotated[str, typer.Option(help="read or write (write includes read).")] = "read",
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Let TO read (or write) under PREFIX."""
    grant = _run(url, api_key, lambda c: c.fs.grant(prefix, to, mode))
    where = f"~{grant.namespace}/{grant.prefix}"
    console.print(f"{grant.grantee} may {grant.mode.value} {where}", markup=False)


@fs_app.command("revoke")
def fs_revoke(
    prefix: Annotated[str, typer.Argument(help="The folder of the grant.")],
    to: Annotated[str, typer.Argument(help="Whom it was given to.")],
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Withdraw a grant."""
    if not _run(url, api_key, lambda c: c.fs.revoke(prefix, to)):
        fail(f"to: {to} had no grant on {prefix!r}")
    console.print(f"revoked {to} on {prefix!r}", markup=False)


@fs_app.command("grants")
def fs_grants(url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """The grants on your namespace."""
    table = Table("PREFIX", "TO", "MODE", box=None)
    for grant in _run(url, api_key, lambda c: c.fs.grants("")):
        table.add_row(escape(grant.prefix) or "(all)", grant.grantee, grant.mode.value)
    console.print(table)


@fs_app.command("usage")
def fs_usage(url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """The bytes you store (every version counts)."""
    console.print(f"{_run(url, api_key, lambda c: c.fs.usage())} bytes", markup=False)
