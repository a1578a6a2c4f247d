"""Agents and storage: ctx.fs and ctx.memory as syscalls (traced, each agent in its own
namespace, grants between agents), and the declarative loop's storage tools."""

from __future__ import annotations

import json

import pytest

from llmasos import Client
from llmasos.agents.react import AgentSpec, agent_tool
from llmasos.errors import PermissionDeniedError
from llmasos.storage.service import Storage, StorageConfig


@pytest.fixture(scope="module")
def client(model_path, tmp_path_factory):
    storage = Storage(StorageConfig(tmp_path_factory.mktemp("storage")))
    with Client(model=str(model_path), storage=storage, context_length=512) as client:
        yield client


def test_each_agent_has_its_own_namespace_and_needs_a_grant_for_another(client):
    def writer(ctx):
        return ctx.fs.write("report.txt", "the tide turns at noon")

    def reader(ctx, path):
        try:
            return ctx.fs.read(path).decode()
        except PermissionDeniedError as error:
            return f"refused: {error}"

    assert client.run_agent(writer, name="writer").wait().value == 1
    assert client.fs.read("~local:writer/report.txt") == b"the tide turns at noon"
    refused = client.run_agent(reader, "~local:writer/report.txt", name="reader").wait()
    assert refused.value.startswith("refused: path: local:reader has no read grant")
    client.fs.grant("~local:writer/", "local:reader", "read")  # the owner grants for its agent
    granted = client.run_agent(reader, "~local:writer/report.txt", name="reader").wait()
    assert granted.value == "the tide turns at noon"
    syscalls = [(e.syscall, e.output) for e in granted.trace]
    assert syscalls == [("fs.read", {"bytes": len("the tide turns at noon")})]


def test_memory_syscalls_are_traced_and_kept_between_runs(client):
    def keeper(ctx, fact):
        ctx.memory.store(fact)
        return [hit.text for hit in ctx.memory.search("where are the keys?", k=1)]

    first = client.run_agent(keeper, "The keys are under the blue mat.", name="keeper").wait()
    assert first.value == ["The keys are under the blue mat."]
    second = client.run_agent(keeper, "Lunch is at one.", name="keeper").wait()
    assert second.value == ["The keys are under the blue mat."]  # from the first run
    assert [e.syscall for e in second.trace] == ["memory.store", "memory.search"]
    assert client.agent_memory("keeper").count() == 2


def test_the_loops_storage_tools_run_through_the_syscalls(client):
    spec = AgentSpec(instructions="Keep notes.", tools=("write_file", "read_file", "recall"))

    def tools(ctx):
        observations = [
            agent_tool(ctx, spec, "write_file", {"path": "notes/a.md", "content": "x" * 5000}),
            agent_tool(ctx, spec, "read_file", {"path": "notes/a.md", "start": 4000}),
            agent_tool(ctx, spec, "list_files", {"prefix": "notes"}),
            agent_tool(ctx, spec, "remember", {"text": "The boat leaves from pier 9."}),
            agent_tool(ctx, spec, "recall", {"query": "which pier?", "k": 1}),
            agent_tool(ctx, spec, "read_file", {"path": "../escape"}),
            agent_tool(ctx, spec, "write_file", {"path": "notes/b.md"}),
        ]
        return observations

    written, read, listed, remembered, recalled, bad_path, bad_call = (
        client.run_agent(tools, name="notes").wait().value
    )
    assert written == "version 1"
    assert read == "(characters 4000-5000 of 5000)\n" + "x" * 1000
    assert json.loads(listed) == [{"path": "notes/a.md", "version": 1, "size": 5000}]
    assert (remembered, json.loads(recalled)) == ("remembered", ["The boat leaves from pier 9."])
    assert bad_path.startswith("error: path:")
    assert bad_call.startswith("error: 'content' is a required property")
