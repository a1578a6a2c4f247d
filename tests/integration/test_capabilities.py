"""Capabilities on the real engine: an agent keeps to the models, tools, paths and channels it
was given, a child never gets more than its parent, and each refusal is a clear error in the
agent and an entry in the audit log."""

from __future__ import annotations

import pytest

from llmasos import Capabilities, Client
from llmasos.auth.audit import AuditLog
from llmasos.errors import CapabilityError
from llmasos.storage.service import Storage, StorageConfig


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    return Storage(StorageConfig(tmp_path_factory.mktemp("storage")))


@pytest.fixture(scope="module")
def client(model_path, storage):
    with Client(model=str(model_path), storage=storage, context_length=512) as client:
        yield client


def attempt(ctx, action):
    """The action's value, or how it was refused."""
    try:
        return action(ctx)
    except CapabilityError as error:
        return f"refused {error}"


def refusals(storage: Storage, pid: int) -> list[str]:
    entries = AuditLog(storage).entries(0, 10_000)
    return [
        f"{e.target} {e.detail}"
        for e in entries
        if e.event == "capability.refused" and f"(pid {pid})" in e.actor
    ]


def test_a_tool_a_path_a_model_and_a_channel_outside_the_set_are_refused_and_audited(
    client, storage
):
    caps = Capabilities(
        models=(client.kernel.engine.info.model_name,), tools=("calculator",), read=("notes",),
        write=("notes",), channels=("news",),
    )  # fmt: skip

    def agent(ctx):
        return {
            "tool": attempt(ctx, lambda c: c.tool("python", code="print(1)")),
            "allowed_tool": attempt(ctx, lambda c: c.tool("calculator", expression="6*7").value),
            "write": attempt(ctx, lambda c: c.fs.write("diary.txt", "x")),
            "allowed_write": attempt(ctx, lambda c: c.fs.write("notes/a.txt", "kept")),
            "read": attempt(ctx, lambda c: c.fs.read("~local/secret.txt")),
            "model": attempt(ctx, lambda c: c.llm("Hi", model="other:latest", max_tokens=1)),
            "allowed_model": attempt(ctx, lambda c: len(c.llm("Hi", max_tokens=2)) >= 0),
            "channel": attempt(ctx, lambda c: c.send("secrets", "x")),
            "allowed_channel": attempt(ctx, lambda c: c.send("news", "x")),
        }

    handle = client.run_agent(agent, name="limited", capabilities=caps)
    result = handle.wait(timeout=120)
    value = result.value
    assert result.outcome.value == "done", result.error
    assert value["tool"].startswith("refused capabilities.tools: ")
    assert value["write"].startswith("refused capabilities.write: ")
    assert value["read"].startswith("refused capabilities.read: ")
    assert value["model"].startswith("refused capabilities.models: ")
    assert value["channel"].startswith("refused capabilities.channels: ")
    assert value["allowed_tool"] == 42 and value["allowed_write"] == 1
    assert value["allowed_model"] is True and value["allowed_channel"] is None
    assert client.fs.read("~local:limited/notes/a.txt") == b"kept"
    audited = refusals(storage, handle.pid)
    assert [line.split(" ", 1)[0] for line in audited] == [
        "tool", "fs.write", "fs.read", "llm", "send",
    ]  # fmt: skip
    failed = [e for e in result.trace if e.error]
    assert len(failed) == 5 and all("capabilities." in e.error for e in failed)


def test_a_child_cannot_widen_and_inherits_what_it_does_not_ask_for(client, storage):
    caps = Capabilities(tools=("calculator",), write=("notes",), token_budget=500)

    def child(ctx):
        return attempt(ctx, lambda c: c.tool("python", code="print(1)"))

    def parent(ctx):
        wider = attempt(
            ctx, lambda c: c.spawn(child, capabilities=Capabilities(tools=("calculator", "python")))
        )
        more_tokens = attempt(
            ctx, lambda c: c.spawn(child, capabilities=Capabilities(token_budget=501))
        )
        other_path = attempt(
            ctx, lambda c: c.spawn(child, capabilities=Capabilities(write=("~local/",)))
        )
        narrower = ctx.spawn(child, capabilities=Capabilities(write=("notes/child",)))
        inherited = ctx.wait(ctx.spawn(child))
        return wider, more_tokens, other_path, ctx.wait(narrower), inherited

    handle = client.run_agent(parent, name="parent", capabilities=caps)
    wider, more_tokens, other_path, narrower, inherited = handle.wait(timeout=120).value
    assert wider.startswith("refused capabilities.tools: asks for ['python']")
    assert more_tokens.startswith("refused capabilities.token_budget: ")
    assert other_path.startswith("refused capabilities.write: ")
    assert narrower.startswith("refused capabilities.tools")  # the child kept the parent's set
    assert inherited.startswith("refused capabilities.tools")
    assert [line.split(" ", 1)[0] for line in refusals(storage, handle.pid)] == ["spawn"] * 3


def test_the_token_budget_of_the_capabilities_becomes_the_agents_limit(client):
    def agent(ctx):
        return [ctx.llm("Once upon a time", max_tokens=16) for _ in range(40)]

    result = client.run_agent(agent, capabilities=Capabilities(token_budget=40)).wait(timeout=120)
    assert result.outcome.value == "limit" and "token_budget" in result.error


def test_max_pages_refuses_a_model_call_that_needs_more(client):
    def agent(ctx):
        return attempt(ctx, lambda c: c.llm("Hello", max_tokens=200))

    handle = client.run_agent(agent, capabilities=Capabilities(max_pages=2))
    refused = handle.wait(timeout=60).value
    assert refused.startswith("refused capabilities.max_pages: the prompt plus max_tokens need")
    allowed = client.run_agent(agent, capabilities=Capabilities(max_pages=64)).wait(timeout=120)
    assert isinstance(allowed.value, str) and not allowed.value.startswith("refused")


def test_children_share_their_parents_token_budget_rather_than_multiply_it(client):
    def child(ctx):
        return attempt(ctx, lambda c: [c.llm("Once upon a time", max_tokens=16) for _ in range(5)])

    def parent(ctx):
        pids = [ctx.spawn(child) for _ in range(4)]
        return [attempt(ctx, lambda c, pid=pid: c.wait(pid)) for pid in pids]

    result = client.run_agent(parent, capabilities=Capabilities(token_budget=60)).wait(timeout=300)
    children = [client.agent(pid).wait() for pid in client.agent(result.pid).info().child_agents]
    spent = sum(c.usage.computed_tokens for c in children)
    assert any(c.outcome.value == "limit" for c in children)
    assert spent < 60 + 4 * (16 + 8)  # the budget, plus at most one call in flight per child
