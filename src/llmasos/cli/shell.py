"""`llmasos shell`: a sentence in, one CLI command out (the server's translation, GET
/v1/shell/translate: its model under a grammar of the commands that can run now,
nlshell/commands.py), shown, and run only when the caller's role allows it and the user says
yes (`--yes` runs read-only commands at once, `--dry-run` only prints). Without a sentence it
reads one request a line until Ctrl-D or `exit`."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Annotated

import httpx
import typer

from llmasos.cli.common import DEFAULT_URL, ApiKey, Model, Url, console, fail, notice
from llmasos.errors import LLMasOSError
from llmasos.nlshell.commands import quoted, verb_of
from llmasos.remote import raise_for_error

MAX_SENTENCE_CHARS = 500


@dataclass(frozen=True)
class Translation:
    argv: list[str]
    access: str  # "read", "write" or "admin"
    role: str
    allowed: bool


class Shell:
    """One server and key: translations, and runs of the CLI against that server."""

    def __init__(self, url: str, api_key: str | None, model: str | None) -> None:
        self.url, self.api_key, self.model = url.rstrip("/"), api_key, model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=300)

    def translate(self, sentence: str) -> Translation:
        params = {"sentence": sentence, **({"model": self.model} if self.model else {})}
        reply = self.http.get("/v1/shell/translate", params=params)
        raise_for_error(reply)
        data = reply.json()
        access = verb_of(data["argv"]).access.value  # known here, not taken on trust
        return Translation(data["argv"], access, data["role"], data["allowed"])

    def run(self, argv: list[str]) -> int:
        """Run the command as the CLI would, against this server with this key."""
        env = {**os.environ, "LLMASOS_URL": self.url}
        if self.api_key:
            env["LLMASOS_API_KEY"] = self.api_key
        program = "from llmasos.cli import main; main()"
        return subprocess.run([sys.executable, "-c", program, *argv], env=env).returncode


def shell(
    sentence: Annotated[
        list[str] | None, typer.Argument(help="The request; without one, read requests a line.")
    ] = None,
    yes: Annotated[bool, typer.Option(help="Run read-only commands without asking.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the command; run nothing.")] = False,
    model: Model = None,
    url: Url = DEFAULT_URL,
    api_key: ApiKey = None,
) -> None:
    """Say what to do in a sentence ("kill the longest running job"); the server's model
    turns it into one llmasos command, shown before it runs (after you confirm)."""
    session = Shell(url, api_key, model)
    if sentence:
        raise typer.Exit(_one(session, " ".join(sentence), yes=yes, dry_run=dry_run))
    while True:
        try:
            line = console.input("[bold]llmasos>[/bold] ").strip()
        except EOFError:
            return
        if line in ("exit", "quit"):
            return
        if line:
            _one(session, line, yes=yes, dry_run=dry_run)


def _one(session: Shell, sentence: str, *, yes: bool, dry_run: bool) -> int:
    """Translate, show, check, confirm, run: the exit status (1: refused or not run)."""
    if len(sentence) > MAX_SENTENCE_CHARS:
        notice(f"a request may have {MAX_SENTENCE_CHARS} characters; this one has {len(sentence)}")
        return 1
    try:
        done = session.translate(sentence)
    except httpx.HTTPError as error:
        fail(f"no LLMasOS server answers at {session.url} ({error})")
    except LLMasOSError as error:
        notice(f"no command: {error}")
        return 1
    console.print(f"[bold]llmasos {quoted(done.argv)}[/bold]", highlight=False)
    if dry_run:
        return 0
    if not done.allowed:
        notice(f"refused: this key's role ({done.role}) may not run a command that {done.access}s")
        return 1
    if not (yes and done.access == "read") and not _confirmed():
        notice("not run")
        return 1
    return session.run(done.argv)


def _confirmed() -> bool:
    try:
        return typer.confirm("Run it?", default=False)
    except typer.Abort:  # no answer (end of input): no
        console.print()
        return False
