"""Agents on the real engine and the default model: declarative runs with tools, scheduling by
the agent's priority, kill, prefix reuse between turns, IPC and pipes."""

from __future__ import annotations

import json

import jsonschema
import pytest

from llmasos import Client
from llmasos.agents.agent import AgentOutcome
from llmasos.agents.react import AgentSpec, agent_tool
from llmasos.tools.sandbox import SandboxLimits, sandbox_problem
from tests.unit.test_kernel import wait_until

LONG = "A long story about the sea, the ships and the people who sailed them:"


@pytest.fixture(scope="module")
def client(model_path):
    with Client("priority", model=str(model_path), num_slots=4, context_length=2048) as c:

        def lookup(city: str) -> str:
            """The weather in a city."""
            return f"sunny in {city}"

        c.tools.register_function(
            lookup,
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 30}},
                "required": ["city"],
                "additionalProperties": False,
            },
        )
        yield c


@pytest.mark.skipif(sandbox_problem() is not None, reason=str(sandbox_problem()))
def test_a_declarative_agent_with_three_tools_runs_to_its_answer(client):
    spec = AgentSpec(
        instructions="You are a careful assistant with a calculator, Python and a weather service.",
        tools=("calculator", "python", "lookup"),
        output_schema={"type": "string", "maxLength": 80},
        max_steps=4,
        max_tokens_per_step=80,
        temperature=0.8,
        seed=11,
    )
    for task in ("What is 17 * 23?", "Is it sunny in Paris?"):
        result = client.run_spec(spec, task).wait(300)
        assert result.ok, result.error
        assert isinstance(result.value, str) and len(result.value) <= 80
        llm_steps = [e for e in result.trace if e.syscall == "llm"]
        assert 1 <= len(llm_steps) <= 4 and all(e.logprobs for e in llm_steps)
        for entry in result.trace:
            if entry.syscall == "tool":
                tool = client.tools.get(entry.inputs["name"])
                jsonschema.validate(entry.inputs["arguments"], tool.parameters)


@pytest.mark.skipif(sandbox_problem() is not None, reason=str(sandbox_problem()))
def test_a_runaway_tool_is_stopped_and_the_agent_goes_on_with_an_error_result(client):
    def agent(ctx):
        spin = ctx.tool("python", code="while True: pass")
        hog = ctx.tool("python", code="x = bytearray(8 * 1024**3)")
        net = ctx.tool("python", code="import socket; socket.create_connection(('1.1.1.1', 80))")
        after = ctx.llm(f"The tool said: {spin.error}\nSo", max_tokens=4, temperature=0)
        return spin, hog, net, after

    result = client.run_agent(agent).wait(60)
    spin, hog, net, after = result.value
    assert result.ok and isinstance(after, str)
    assert f"cpu time ({SandboxLimits().cpu_s} s)" in spin.error and "memory" in hog.error
    assert "Network is unreachable" in net.error


def test_an_urgent_agents_calls_preempt_a_background_agents(model_path):
    with Client("priority", model=str(model_path), num_slots=2, max_running=1) as c:
        background = c.run_agent(lambda ctx: ctx.llm(LONG, max_tokens=120, temperature=0))
        wait_until(lambda: any(p.num_output_tokens > 2 for p in c.kernel.processes()), 60)
        urgent = c.run_agent(
            lambda ctx: ctx.llm("Quick: two plus two is", max_tokens=4, temperature=0),
            priority=10,
        )
        urgent_call = urgent.wait(60).trace[0]
        background_call = background.wait(120).trace[0]
        assert urgent.wait().ok and background.wait().ok
        urgent_result = c.process(urgent_call.pid).wait()
        background_result = c.process(background_call.pid).wait()
    assert background_result.preemptions >= 1
    assert urgent_result.timings.total_s < background_result.timings.total_s


def test_killing_an_agent_kills_its_model_calls_and_frees_their_pages(client):
    agent = client.run_agent(lambda ctx: ctx.llm(LONG, max_tokens=1000, temperature=0))
    wait_until(lambda: agent.info().processes, 60)
    (call,) = agent.info().processes
    wait_until(lambda: client.kernel.get(call).num_output_tokens > 2, 60)
    assert any(p.pid == call and p.pages > 0 for p in client.memory().processes)
    agent.kill()
    assert agent.wait(30).outcome is AgentOutcome.KILLED
    assert client.process(call).wait(30).finish_reason.value == "killed"
    assert all(p.pid != call for p in client.memory().processes)


def test_a_second_turn_computes_only_its_new_tokens(client):
    def two_turns(ctx):
        first = ctx.llm("User: Name three rivers.\nAssistant:", max_tokens=24, temperature=0)
        ctx.llm(
            f"User: Name three rivers.\nAssistant:{first}\nUser: And two seas?\nAssistant:",
            max_tokens=8,
            temperature=0,
        )

    first, second = client.run_agent(two_turns).wait(120).trace
    assert first.tokens["cached"] < first.tokens["prompt"]
    new_tokens = second.tokens["prompt"] - second.tokens["cached"]
    assert second.tokens["cached"] >= first.tokens["prompt"] + first.tokens["completion"] - 2
    assert new_tokens <= 16  # "\nUser: And two seas?\nAssistant:" and a token boundary or two


def test_two_agents_pass_model_output_through_a_channel_and_a_mailbox(client):
    def writer(ctx, reader_pid):
        line = ctx.llm("The capital of France is", max_tokens=6, temperature=0)
        ctx.send("drafts", line)
        return ctx.recv(timeout=60).body

    def reader(ctx):
        draft = ctx.recv(timeout=60, channel="drafts")
        ctx.send(draft.sender, draft.body.upper())
        return draft.body

    r = client.run_agent(reader)
    w = client.run_agent(writer, r.pid)
    text = client.generate_text("The capital of France is", max_tokens=6, temperature=0)
    assert r.wait(60).value == text and w.wait(60).value == text.upper()

    def talks_to_the_dead(ctx):
        ctx.send(r.pid, "anyone?")

    assert "already terminated" in client.run_agent(talks_to_the_dead).wait(30).error


def test_a_pipe_gives_the_same_text_as_one_process_after_the_other(client):
    first = client.generate_text("Once upon a time", max_tokens=12, temperature=0)
    expected = client.generate_text(f"Summary of: {first}\nIn short:", max_tokens=8, temperature=0)
    source = client.spawn("Once upon a time", max_tokens=12, temperature=0)
    piped = client.pipe(source, "Summary of: {input}\nIn short:", max_tokens=8, temperature=0)
    assert piped.wait().text == expected


def test_llm_with_tools_returns_calls_whose_arguments_validate(client):
    def caller(ctx):
        forced = ctx.llm(
            "Weather please.",
            tools=["lookup"],
            tool_choice="required",
            max_tokens=60,
            temperature=0.9,
            seed=3,
        )
        named = ctx.llm(
            "Compute.",
            tools=["lookup", "calculator"],
            tool_choice="calculator",
            max_tokens=80,
            temperature=0.9,
            seed=4,
        )
        return forced, named

    forced, named = client.run_agent(caller).wait(120).value
    assert forced and all(call.name == "lookup" for call in forced)
    assert named and all(call.name == "calculator" for call in named)
    for call in forced + named:
        jsonschema.validate(json.loads(call.arguments), client.tools.get(call.name).parameters)


def test_the_loops_own_send_and_spawn_tools_go_through_the_agents_syscalls(client):
    spec = AgentSpec(
        instructions="You answer briefly.",
        tools=("spawn", "send"),
        max_steps=1,  # the helper answers at its first step
        max_tokens_per_step=40,
    )

    def agent(ctx):
        answer = agent_tool(ctx, spec, "spawn", {"task": "Say hello."})
        unknown = agent_tool(ctx, spec, "send", {"to": 10**9, "body": "anyone?"})
        invalid = agent_tool(ctx, spec, "send", {"to": "no spaces allowed", "body": "x"})
        return answer, unknown, invalid

    result = client.run_agent(agent).wait(120)
    answer, unknown, invalid = result.value
    assert isinstance(json.loads(answer), str)
    assert unknown == f"error: pid {10**9}: no such process"
    assert invalid.startswith("error: ") and "does not match" in invalid
    assert [entry.syscall for entry in result.trace] == ["spawn", "wait", "send"]
    (helper,) = [a for a in client.agents(include_ended=True) if a.parent == result.pid]
    assert helper.name == "agent-helper" and helper.steps == 1
