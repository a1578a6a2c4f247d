"""What every command group shares: the consoles, common options and reaching the server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, NoReturn

import httpx
import typer
from rich.console import Console

if TYPE_CHECKING:
    from llmasos.client import Client

DEFAULT_URL = "http://127.0.0.1:8000"

console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

Url = Annotated[str, typer.Option("--url", envvar="LLMASOS_URL", help="The server to talk to.")]
ApiKey = Annotated[
    str | None, typer.Option("--api-key", envvar="LLMASOS_API_KEY", help="The server's API key.")
]
Model = Annotated[str | None, typer.Option(help="Model name or GGUF path.")]


def server_answers(url: str) -> bool:
    """True when an LLMasOS server answers /health at `url`."""
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=1.0).is_success
    except httpx.HTTPError:
        return False


def remote_client(url: str, api_key: str | None) -> Client:
    """A Client on the server at `url`; exits with a hint when none answers."""
    from llmasos.client import Client

    if not server_answers(url):
        fail(f"no LLMasOS server answers at {url}; start one with `llmasos serve`")
    return Client(base_url=url, api_key=api_key)


def fail(message: str) -> NoReturn:
    """Print `message` as an error on stderr and exit with status 2."""
    errors.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def announce(message: str) -> None:
    """A server's status line: a log record when it logs JSON lines, else a line on stderr."""
    from llmasos.server.log_format import logs_json

    if logs_json():
        logging.getLogger("llmasos.serve").info(message)
    else:
        errors.print(message)


def notice(message: str) -> None:
    """A dim status line on stderr, always on a line of its own."""
    errors.print(f"[dim]{message}[/dim]", highlight=False)
