"""fork(): children that share what their parent computed, on the fake engine."""

from __future__ import annotations

import pytest

from llmasos import (
    Client,
    FinishReason,
    InvalidRequestError,
    NoSuchProcessError,
    ProcessState,
    ProcessTerminatedError,
)
from llmasos.kernel.process import Signal
from llmasos.sampling import SamplingParams
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_kernel import signal_through_gate, solo_text, wait_until


def client(slots: int = 4) -> Client:
    return Client(engine=FakeEngine(num_slots=slots, context_length=256))


def test_forks_of_a_new_process_compute_its_prompt_once_and_draw_their_own_first_token():
    with client() as c:
        kernel = c.kernel
        with kernel.paused():  # a fork inside paused() is answered; no tick runs yet
            parent = kernel.spawn("shared prompt", SamplingParams(max_tokens=6, temperature=0))
            children = kernel.fork(parent.pid, 3)
            assert [p.state for p in children] == [ProcessState.WAITING] * 3
        results = [p.done.wait(10) and p.result for p in (parent, *children)]
        prompt = len(parent.prompt_tokens)
        assert kernel.stats.prompt_tokens == prompt  # once, not four times
        assert [r.usage.cached_tokens for r in results[1:]] == [prompt] * 3
        assert {r.text for r in results} == {solo_text("shared prompt", 6)}  # greedy: alike
        assert [p.fork_of for p in children] == [parent] * 3


def test_seeded_forks_differ_from_each_other_and_repeat_with_the_same_seeds():
    def texts(seeds: list[int]) -> list[str]:
        with client() as c:
            kernel = c.kernel
            with kernel.paused():
                params = SamplingParams(max_tokens=12, temperature=1.0, seed=1)
                parent = kernel.spawn("seeded", params)
                forks = kernel.fork(parent.pid, len(seeds), seeds=seeds)
            for p in (parent, *forks):
                p.done.wait(10)
            return [p.result.text for p in (parent, *forks)]

    first = texts([11, 12, 13])
    assert first == texts([11, 12, 13])
    assert len(set(first)) > 1


def test_a_fork_of_a_generating_process_inherits_its_output_and_continues_from_it():
    with client() as c:
        kernel = c.kernel
        engine = kernel.engine
        engine.close_gate()
        parent = kernel.spawn("mid-way", SamplingParams(max_tokens=20, temperature=0))
        engine.allow(5)
        wait_until(lambda: parent.num_output_tokens >= 4 and engine.at_gate)
        forked = []  # a fork is answered between steps: let them through one at a time
        signal_through_gate(engine, lambda: forked.extend(kernel.fork(parent.pid, 1)))
        (child,) = forked
        inherited = child.num_output_tokens
        assert inherited >= 4 and child.tokens == parent.tokens[: len(child.tokens)]
        engine.open_gate()
        for p in (parent, child):
            p.done.wait(10)
        assert child.result.text == parent.result.text == solo_text("mid-way", 20)
        # everything the parent had computed was copied, not recomputed
        assert child.result.usage.cached_tokens == len(parent.prompt_tokens)
        assert kernel.pager.stats.prefix_copies >= 1


def test_forks_waiting_for_a_killed_parent_go_on_by_themselves():
    with client() as c:
        kernel = c.kernel
        with kernel.paused():  # killed before it computed anything
            parent = kernel.spawn("doomed", SamplingParams(max_tokens=5, temperature=0))
            children = kernel.fork(parent.pid, 2)
            kernel.signal(parent.pid, Signal.KILL)
            assert [p.state for p in children] == [ProcessState.READY] * 2  # no longer waiting
        for child in children:
            assert child.done.wait(10)
            assert child.result.finish_reason is FinishReason.LENGTH
            assert child.result.text == solo_text("doomed", 5)
        assert parent.result.finish_reason is FinishReason.KILLED
        assert parent.result.usage.completion_tokens == 0


def test_bad_forks_are_refused_with_clear_errors():
    with client() as c:
        kernel = c.kernel
        ended = kernel.spawn("short", SamplingParams(max_tokens=1, temperature=0))
        ended.done.wait(10)
        with pytest.raises(ProcessTerminatedError):
            kernel.fork(ended.pid, 2)
        with pytest.raises(NoSuchProcessError):
            kernel.fork(4242, 2)
        for n, seeds, field in (
            (0, None, "n"),
            (33, None, "n"),
            (2, [1], "seeds"),
            (1, [-1], "seeds"),
        ):
            with pytest.raises(InvalidRequestError) as info:
                kernel.fork(ended.pid, n, seeds=seeds)
            assert info.value.field == field


def test_handles_fork_in_process_and_over_http():
    from fastapi.testclient import TestClient

    from llmasos.remote import RemoteProcessHandle
    from tests.unit.test_server import kernel_of, make_client

    with client() as c:
        with c.kernel.paused():
            parent = c.spawn("handle fork", max_tokens=4, temperature=0)
            children = parent.fork(2)
        assert [h.wait().text for h in children] == [solo_text("handle fork", 4)] * 2
    http: TestClient
    with make_client() as http:
        engine = kernel_of(http).engine
        engine.close_gate()  # the fake is instant: hold the parent in its first steps
        body = {"prompt": "over http", "max_tokens": 200}
        pid = http.post("/v1/processes", json=body).json()["pid"]
        replies = []
        fork = {"seeds": [1, 2]}
        signal_through_gate(
            engine, lambda: replies.append(http.post(f"/v1/processes/{pid}/fork", json=fork))
        )
        engine.open_gate()
        (forked,) = replies
        assert forked.status_code == 201
        rows = forked.json()["data"]
        assert len(rows) == 2 and all(row["pid"] != pid for row in rows)
        handle = RemoteProcessHandle(http, rows[0]["pid"])
        assert handle.wait(timeout=30).usage.completion_tokens == 200
        bad = http.post(f"/v1/processes/{pid}/fork", json={"n": 99})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "n"
        both = http.post(f"/v1/processes/{pid}/fork", json={"n": 2, "seeds": [1, 2]})
        assert both.status_code == 400  # the seeds say how many
