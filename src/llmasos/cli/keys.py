"""`llmasos keys` and `llmasos audit`: API keys and the audit log, on this machine's storage
($LLMASOS_HOME/storage or LLMASOS_DATABASE_URL), so the first admin needs no server."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from llmasos.cli.common import console, fail
from llmasos.errors import LLMasOSError

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: verify, tail.", no_args_is_help=True)
T = TypeVar("T")


@contextmanager
def _storage() -> Iterator:
    from llmasos.storage.service import Storage

    try:
        storage = Storage.from_settings()
    except (LLMasOSError, ValueError) as error:
        fail(str(error))
    try:
        yield storage
    finally:
        storage.close()


def _keys(action: Callable[..., T]) -> T:
    from llmasos.auth.audit import AuditLog
    from llmasos.auth.keys import KeyStore

    with _storage() as storage:
        try:
            return action(KeyStore(storage), AuditLog(storage))
        except LLMasOSError as error:
            fail(str(error))


def _when(seconds: float | None) -> str:
    return datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M") if seconds else ""


@keys_app.command("create")
def keys_create(
    owner: Annotated[str, typer.Option(help="Whose processes, files and memory it reaches.")],
    role: Annotated[str, typer.Option(help="admin, user or read-only.")] = "user",
    expires_in_days: Annotated[float | None, typer.Option(help="Expire after this.")] = None,
    model: Annotated[list[str] | None, typer.Option(help="A model it may use.")] = None,
    tool: Annotated[list[str] | None, typer.Option(help="A tool its agents may call.")] = None,
    read: Annotated[list[str] | None, typer.Option(help="A path prefix it may read.")] = None,
    write: Annotated[list[str] | None, typer.Option(help="A path prefix it may write.")] = None,
    channel: Annotated[list[str] | None, typer.Option(help="An IPC channel.")] = None,
    max_pages: Annotated[int | None, typer.Option(help="KV pages per process.")] = None,
    token_budget: Annotated[int | None, typer.Option(help="Tokens per agent.")] = None,
) -> None:
    """Create a key and print it (once: only its id is shown again). The capability options
    bound what its requests, processes and agents may touch; unset ones leave it open."""
    from llmasos.auth.capabilities import Capabilities

    def create(keys, audit):
        seconds = expires_in_days * 86400 if expires_in_days else None
        caps = Capabilities(
            models=model, tools=tool, read=read, write=write, channels=channel,
            max_pages=max_pages, token_budget=token_budget,
        )  # fmt: skip
        key, info = keys.create(owner, role, seconds, caps)
        audit.append("key.created", "cli", info.id, "ok", f"{info.owner} {info.role.value}")
        return key, info

    key, info = _keys(create)
    console.print(key, markup=False, highlight=False)
    limits = {k: v for k, v in info.capabilities.to_json().items() if v is not None}
    console.print(f"id {info.id}, owner {info.owner}, role {info.role.value}", style="dim")
    if limits:
        console.print(f"capabilities {limits}", style="dim", markup=False, highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, owner, role, dates, whether it is active (never a secret)."""
    table = Table("ID", "OWNER", "ROLE", "CREATED", "EXPIRES", "REVOKED", "ACTIVE", box=None)
    for key in _keys(lambda keys, _: keys.list()):
        dates = (_when(key.created_at), _when(key.expires_at), _when(key.revoked_at))
        table.add_row(key.id, key.owner, key.role.value, *dates, "yes" if key.active else "no")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (keys list).")]) -> None:
    """Revoke a key: refused from the next request on (servers recheck within 30 s)."""

    def revoke(keys, audit):
        info = keys.revoke(key_id)
        audit.append("key.revoked", "cli", key_id)
        return info

    info = _keys(revoke)
    console.print(f"revoked {info.id} ({info.owner}, {info.role.value})", markup=False)


@audit_app.command("verify")
def audit_verify() -> None:
    """Exit 0 when the audit log is intact; 1, naming the first bad entry, otherwise."""
    problem = _keys(lambda _, audit: audit.verify())
    if problem is not None:
        console.print(f"audit log: {problem}", markup=False)
        raise typer.Exit(1)
    console.print("audit log: intact")


@audit_app.command("tail")
def audit_tail(count: Annotated[int, typer.Option("-n", help="How many entries.")] = 20) -> None:
    """The newest entries."""
    entries = _keys(lambda _, audit: audit.entries(0, 10**9))[-count:]
    for entry in entries:
        console.print(f"{entry.seq} {_when(entry.at)} {entry.event} {entry.actor} "
                      f"{entry.target} {entry.outcome} {entry.detail}", markup=False)  # fmt: skip
