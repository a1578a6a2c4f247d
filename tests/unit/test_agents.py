"""The agent runtime's logic on the fake engine: pids, messages, limits, kill, trace."""

from __future__ import annotations

import threading

import pytest

from llmasos import Client
from llmasos.agents.agent import AgentLimits, AgentOutcome, AgentState
from llmasos.errors import (
    AgentError,
    InvalidRequestError,
    MailboxFullError,
    NoSuchProcessError,
    ProcessTerminatedError,
    ReceiveTimeoutError,
)
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_kernel import client, signal_through_gate, wait_until


def test_agents_and_processes_share_one_pid_space():
    with client() as c:
        first = c.spawn("abc", max_tokens=2)

        def calls_the_model(ctx):
            return ctx.pid, ctx.llm("xyz", max_tokens=3, temperature=0)

        agent = c.run_agent(calls_the_model)
        pid, text = agent.wait(10).value
        (entry,) = agent.wait().trace
    assert pid == agent.pid and len({first.pid, agent.pid, entry.pid}) == 3
    assert entry.syscall == "llm" and entry.output == text and entry.tokens["completion"] == 3


def test_model_calls_inherit_the_agents_priority():
    seen = []
    with client("priority") as c:

        def agent(ctx):
            return ctx.llm("abc", max_tokens=50)

        handle = c.run_agent(agent, priority=7)
        wait_until(lambda: any(p.pid != handle.pid for p in c.ps()) or handle.info().outcome)
        seen = [p.priority for p in c.ps()]
        handle.wait(10)
    assert seen == [7]


def test_mailbox_channel_and_broadcast_carry_messages_between_agents():
    with client() as c:

        def server(ctx):
            request = ctx.recv(timeout=10)
            ctx.send(request.sender, request.body * 2)
            job = ctx.recv(timeout=10, channel="jobs")
            note = ctx.recv(timeout=10)
            return job.body, job.sender, note.body

        def requester(ctx, server_pid):
            ctx.send(server_pid, 21)
            answer = ctx.recv(timeout=10)
            ctx.send("jobs", "sort the files")
            ctx.broadcast("done")
            return answer.body, answer.sender

        s = c.run_agent(server)
        r = c.run_agent(requester, s.pid)
        assert r.wait(10).value == (42, s.pid)
        assert s.wait(10).value == ("sort the files", r.pid, "done")


def test_a_message_to_an_ended_or_unknown_pid_raises():
    with client() as c:
        ended = c.run_agent(lambda ctx: None)
        ended.wait(10)

        def sender(ctx, to):
            ctx.send(to, "hello?")

        assert "ProcessTerminatedError" in c.run_agent(sender, ended.pid).wait(10).error
        assert "no such process" in c.run_agent(sender, 9999).wait(10).error
        with pytest.raises(ProcessTerminatedError):
            ended.send("late")


def test_recv_times_out_with_a_clear_error_and_a_full_mailbox_refuses():
    with client() as c:

        def waits(ctx):
            with pytest.raises(ReceiveTimeoutError, match="nothing arrived"):
                ctx.recv(timeout=0.05)
            return "ok"

        assert c.run_agent(waits).wait(10).value == "ok"
        parked = c.run_agent(lambda ctx: ctx.sleep(30))
        for i in range(256):
            parked.send(i)
        with pytest.raises(MailboxFullError, match="256"):
            parked.send("one too many")
        parked.kill()


def test_max_steps_and_token_budget_stop_the_agent_with_the_limit_named():
    with client() as c:

        def loops(ctx):
            while True:
                ctx.llm("abc", max_tokens=4, temperature=0)

        by_steps = c.run_agent(loops, limits=AgentLimits(max_steps=3)).wait(10)
        by_tokens = c.run_agent(loops, limits={"token_budget": 20}).wait(10)
    assert by_steps.outcome is AgentOutcome.LIMIT and "limits.max_steps" in by_steps.error
    assert by_steps.usage.model_calls == 3
    assert by_tokens.outcome is AgentOutcome.LIMIT and "limits.token_budget" in by_tokens.error
    assert by_tokens.usage.computed_tokens >= 20


def test_wall_time_limit_kills_a_blocked_agent():
    with client() as c:
        result = c.run_agent(lambda ctx: ctx.recv(), limits={"wall_time_s": 0.2}).wait(10)
    assert result.outcome is AgentOutcome.LIMIT and "limits.wall_time_s" in result.error


def test_kill_ends_the_agent_its_model_calls_and_its_child_agents():
    engine = FakeEngine(num_slots=4, context_length=256)
    engine.close_gate()
    with Client(engine=engine) as c:
        started = threading.Event()

        def child(ctx):
            ctx.recv()

        def parent(ctx):
            ctx.spawn(child)
            started.set()
            return ctx.llm("abc", max_tokens=100)

        handle = c.run_agent(parent)
        started.wait(10)
        wait_until(lambda: handle.info().processes)
        (call,) = handle.info().processes
        (child_pid,) = handle.info().child_agents
        signal_through_gate(engine, handle.kill)  # the kernel applies the kill between steps
        engine.open_gate()
        result = handle.wait(10)
        assert result.outcome is AgentOutcome.KILLED
        assert c.agent(child_pid).wait(10).outcome is AgentOutcome.KILLED
        assert c.process(call).wait(10).finish_reason.value == "killed"
        assert c.memory().used_pages == 0  # its pages were freed
        with pytest.raises(ProcessTerminatedError):
            handle.kill()


def test_wait_returns_a_childs_value_or_raises_its_failure():
    with client() as c:

        def good(ctx, x):
            return x + 1

        def bad(ctx):
            raise RuntimeError("boom")

        def parent(ctx):
            value = ctx.wait(ctx.spawn(good, 1))
            with pytest.raises(AgentError, match="failed: RuntimeError: boom"):
                ctx.wait(ctx.spawn(bad))
            return value

        assert c.run_agent(parent).wait(10).value == 2


def test_a_failing_agent_reports_its_error_and_ps_shows_agents():
    with client() as c:
        gate = threading.Event()
        waiting = c.run_agent(lambda ctx: gate.wait(10), name="waiter")
        (info,) = c.agents()
        assert (info.pid, info.name, info.state) == (waiting.pid, "waiter", AgentState.RUNNING)
        gate.set()
        failed = c.run_agent(lambda ctx: 1 / 0).wait(10)
        assert failed.outcome is AgentOutcome.FAILED and "ZeroDivisionError" in failed.error
        waiting.wait(10)
        assert c.agents() == [] and len(c.agents(include_ended=True)) == 2


def test_bad_arguments_are_refused_naming_the_field():
    with client() as c:
        with pytest.raises(InvalidRequestError, match="priority"):
            c.run_agent(lambda ctx: None, priority=5000)
        with pytest.raises(InvalidRequestError, match=r"limits\.max_steps"):
            c.run_agent(lambda ctx: None, limits={"max_steps": 0})
        with pytest.raises(NoSuchProcessError):
            c.agent(12345)


def test_pipe_gives_the_same_text_as_one_after_the_other():
    with client() as c:
        first = c.generate_text("abc", max_tokens=5, temperature=0)
        second = c.generate_text(f"Summary: {first}", max_tokens=5, temperature=0)
        source = c.spawn("abc", max_tokens=5, temperature=0)
        piped = c.pipe(source, "Summary: {input}", max_tokens=5, temperature=0)
        assert piped.wait().text == second


def test_messages_never_cross_owners():
    from llmasos.agents.ipc import PostOffice

    post = PostOffice()
    post.open(1, "alice")
    post.open(2, "alice")
    post.open(3, "bob")
    with pytest.raises(NoSuchProcessError):
        post.send(3, 1, "hello alice")  # bob's agent cannot reach alice's
    assert post.broadcast(3, "anyone?") == 0
    assert post.broadcast(1, "team") == 1
    post.send(1, "news", "alice's news")
    post.send(3, "news", "bob's news")  # the same name, bob's own channel
    assert post.receive(3, channel="news").body == "bob's news"
    assert post.receive(2, channel="news").body == "alice's news"
    assert post.receive(2).body == "team" and post.pending(3) == 0
