"""`llmasos shell`: a sentence in, one CLI command out (by the server's model, under a grammar
of the commands that can run now: shell_grammar.py), shown, and run only when the caller's
role allows it and the user says yes (`--yes` runs read-only commands at once, `--dry-run`
only prints). Without a sentence it reads one request a line until Ctrl-D or `exit`. A
read-only key may not start processes on the server, so its sentences are translated by the
same model in this process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Annotated, Any

import httpx
import typer

from llmasos.cli.common import DEFAULT_URL, ApiKey, Model, Url, console, fail, notice
from llmasos.cli.shell_grammar import (
    Access,
    Command,
    Thing,
    World,
    grammar,
    may_run,
    parse,
    prompt,
    quoted,
)
from llmasos.client import Client
from llmasos.errors import LLMasOSError
from llmasos.remote import raise_for_error

MAX_COMMAND_TOKENS = 64
MAX_SENTENCE_CHARS = 500


class Shell:
    """One server, one key: what it has, who the key is, and the model that translates."""

    def __init__(self, url: str, api_key: str | None, model: str | None) -> None:
        self.url, self.api_key, self.model = url.rstrip("/"), api_key, model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=120)
        self.role = str(self._get("/v1/whoami")["role"])
        # A read-only key may not start processes on the server: it translates here.
        local = self.role == "read-only"
        self.client = Client(model=model) if local else Client(base_url=self.url, api_key=api_key)

    def world(self) -> World:
        """The server's objects now, as the caller sees them."""
        live = [p for p in self._get("/v1/processes")["data"] if p["state"] != "terminated"]
        agents = [a for a in self._get("/v1/agents")["data"] if a.get("state") != "terminated"]
        return World(
            processes=[Thing(str(p["pid"]), _process_about(p)) for p in live],
            agents=[Thing(str(a["pid"]), str(a.get("name") or "")) for a in agents],
            jobs=[Thing(j["id"], _job_about(j)) for j in self._get("/v1/tasks")["data"]],
            models=[Thing(m["id"]) for m in self._get("/v1/models")["data"]],
            keys=[Thing(k["id"], k["owner"]) for k in self._keys()],
        )

    def translate(self, sentence: str, world: World) -> Command:
        """The one command the model makes of `sentence`, under the grammar of `world`."""
        text = self.client.generate_text(
            prompt(sentence, world), grammar=grammar(world), model=self.model,
            max_tokens=MAX_COMMAND_TOKENS, temperature=0,
        )  # fmt: skip
        return parse(text, world)

    def run(self, command: Command) -> int:
        """Run the command as the CLI would, against this server with this key."""
        env = {**os.environ, "LLMASOS_URL": self.url}
        if self.api_key:
            env["LLMASOS_API_KEY"] = self.api_key
        program = "from llmasos.cli import main; main()"
        return subprocess.run([sys.executable, "-c", program, *command.argv], env=env).returncode

    def _get(self, path: str) -> dict[str, Any]:
        reply = self.http.get(path)
        raise_for_error(reply)
        return reply.json()

    def _keys(self) -> list[dict[str, Any]]:
        return self._get("/v1/admin/keys")["data"] if self.role == "admin" else []


def _process_about(process: dict[str, Any]) -> str:
    return f"{process['state']}, priority {process['priority']}, owner {process['owner']}"


def _job_about(job: dict[str, Any]) -> str:
    started = job.get("started_at")
    running = f", running {time.time() - started:.0f} s" if started else ""
    return f"{job['state']}{running}"


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
    try:
        session = Shell(url, api_key, model)
    except (httpx.HTTPError, LLMasOSError) as error:
        fail(f"no LLMasOS server answers at {url} as this key expects ({error})")
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
        command = session.translate(sentence, session.world())
    except LLMasOSError as error:
        notice(f"no command: {error}")
        return 1
    console.print(f"[bold]llmasos {quoted(command.argv)}[/bold]", highlight=False)
    if dry_run:
        return 0
    if not may_run(command, session.role):
        what = command.verb.access.value
        notice(f"refused: this key's role ({session.role}) may not run a command that {what}s")
        return 1
    read_only = command.verb.access is Access.READ
    if not (yes and read_only) and not _confirmed():
        notice("not run")
        return 1
    return session.run(command)


def _confirmed() -> bool:
    try:
        return typer.confirm("Run it?", default=False)
    except typer.Abort:  # no answer (end of input): no
        console.print()
        return False
