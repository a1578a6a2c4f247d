"""`llmasos agents`: declarative agents on the server: run a spec, list, follow, trace, kill."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.table import Table

from llmasos.cli.common import ApiKey, Url, console, fail, notice, server_answers

agents_app = typer.Typer(
    help="Agents on the server: run SPEC.yaml, ps, logs, trace, kill.", no_args_is_help=True
)
Pid = Annotated[int, typer.Argument(help="The agent's pid.")]


class Api:
    """The server's agent routes; any error exits with the server's message."""

    def __init__(self, url: str, api_key: str | None) -> None:
        if not server_answers(url):
            fail(f"no LLMasOS server answers at {url}; start one with `llmasos serve`")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.http.request(method, path, **kwargs)
        if not reply.is_success:
            fail(_message(reply))
        return reply.json()

    def events(self, pid: int) -> Iterator[dict[str, Any]]:
        with self.http.stream("GET", f"/v1/agents/{pid}/events", timeout=None) as reply:
            if not reply.is_success:
                reply.read()
                fail(_message(reply))
            for line in reply.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line[6:])


@agents_app.command("run")
def agents_run(
    spec: Annotated[Path, typer.Argument(help="A YAML (or JSON) agent spec.", exists=True)],
    task: Annotated[str, typer.Option(help="What the agent is to do.")],
    detach: Annotated[bool, typer.Option(help="Print the pid and return at once.")] = False,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """Start an agent from SPEC (instructions, tools, output_schema, limits, ...) on TASK and
    follow its steps to its answer."""
    import yaml

    try:
        fields = yaml.safe_load(spec.read_text())
    except (OSError, yaml.YAMLError) as error:
        fail(f"{spec}: {error}")
    if not isinstance(fields, dict):
        fail(f"{spec}: an agent spec is a mapping of fields (instructions, tools, ...)")
    api = Api(url, api_key)
    agent = api.call("POST", "/v1/agents", json={**fields, "task": task})
    if detach:
        console.print(agent["pid"])
        return
    notice(f"agent {agent['pid']} started")
    _follow(api, agent["pid"])


@agents_app.command("ps")
def agents_ps(
    all: Annotated[bool, typer.Option("--all", help="Ended agents too.")] = False,
    url: Url = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
) -> None:
    """The server's agents, with their live model calls and child agents."""
    console.print(agent_table(Api(url, api_key).call("GET", "/v1/agents", params={"all": all})))


def agent_table(listing: dict[str, Any]) -> Table:
    """GET /v1/agents as a table: each agent with its live model calls and child agents."""
    table = Table("PID", "NAME", "STATE", "PRI", "STEPS", "TOKENS", "WALL", "CALLS", "CHILDREN")
    for row in listing["data"]:
        state = row["state"] if row["outcome"] is None else f"{row['state']} ({row['outcome']})"
        table.add_row(
            str(row["pid"]),
            row["name"],
            state,
            str(row["priority"]),
            str(row["steps"]),
            str(row["computed_tokens"]),
            f"{row['wall_s']:.1f}s",
            " ".join(map(str, row["processes"])),
            " ".join(map(str, row["child_agents"])),
        )
    return table


@agents_app.command("logs")
def agents_logs(pid: Pid, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """Follow an agent: each step as it ends, then its result."""
    _follow(Api(url, api_key), pid)


@agents_app.command("trace")
def agents_trace(pid: Pid, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """An agent's syscalls so far, as a timeline."""
    entries = Api(url, api_key).call("GET", f"/v1/agents/{pid}/trace")["data"]
    for entry in entries:
        console.print(_step_line(entry), highlight=False)


@agents_app.command("kill")
def agents_kill(pid: Pid, url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """Kill an agent, its model calls and its child agents."""
    agent = Api(url, api_key).call("DELETE", f"/v1/agents/{pid}")
    console.print(f"agent {pid}: {agent['state']} ({agent['outcome']})")


def _follow(api: Api, pid: int) -> None:
    for event in api.events(pid):
        if "step" in event:
            console.print(_step_line(event["step"]), highlight=False)
            continue
        result = event["result"]
        if result["outcome"] != "done":
            fail(f"agent {pid} ended {result['outcome']}: {result['error']}")
        value = result["value"]
        console.print(value if isinstance(value, str) else json.dumps(value, indent=2))


def _step_line(entry: dict[str, Any]) -> str:
    """One syscall on one line: when, how long, what, and what came of it."""
    head = f"{entry['started_s']:8.2f}s {entry['duration_s']:6.2f}s  {entry['syscall']:<9}"
    if entry["syscall"] == "tool":
        inputs = entry["inputs"]
        detail = f"{inputs['name']}({json.dumps(inputs['arguments'])})"
    elif entry["syscall"] == "llm":
        tokens = entry.get("tokens") or {}
        detail = (
            f"pid {entry['pid']}, {tokens.get('prompt', 0)} prompt tokens "
            f"({tokens.get('cached', 0)} cached), {tokens.get('completion', 0)} out"
        )
    else:
        detail = json.dumps(entry["inputs"])
    outcome = f"error: {entry['error']}" if entry["error"] else json.dumps(entry["output"])
    return f"{head} {detail} -> {_short(outcome)}"


def _short(text: str, limit: int = 160) -> str:
    """A display cut for the terminal; the API's trace holds the whole text."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(reply: httpx.Response) -> str:
    try:
        return reply.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"the server answered {reply.status_code}"
