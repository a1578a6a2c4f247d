"""The kernel's mechanics on the fake engine: policies, context switches, signals, errors."""

from __future__ import annotations

import threading
import time

import pytest

from llmasos import (
    Client,
    ContextLengthError,
    FinishReason,
    InvalidRequestError,
    KernelBusyError,
    KernelClosedError,
    NoSuchProcessError,
    ProcessState,
    ProcessTerminatedError,
    UnknownModelError,
)
from tests.unit.fake_engine import FakeEngine


def wait_until(predicate, timeout: float = 10.0) -> None:
    """Wait for a state the test needs next; a generous bound, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.001)


def signal_through_gate(engine: FakeEngine, send) -> None:
    """Send a signal while the fake's gate is closed: the kernel applies signals between steps,
    so let steps through one at a time until it has."""
    sender = threading.Thread(target=send)
    sender.start()
    while sender.is_alive():
        engine.allow(1)
        sender.join(0.005)


def client(policy="fcfs", *, slots=4, max_running=None, quantum=16, context_length=256):
    engine = FakeEngine(num_slots=slots, context_length=context_length)
    return Client(policy, engine=engine, max_running=max_running or slots, quantum=quantum)


def solo_text(prompt: str, max_tokens: int) -> str:
    with client() as c:
        return c.generate_text(prompt, max_tokens=max_tokens, temperature=0)


def ran_order(c: Client) -> list[int]:
    """The pid of each single-process tick, in order."""
    return [record.batch[0][0] for record in c.kernel.trace if len(record.batch) == 1]


@pytest.mark.parametrize(
    ("policy", "order"),
    [("fcfs", [0, 1, 2]), ("sjf", [1, 2, 0])],  # sjf: shortest max_tokens first
)
def test_non_preemptive_policies_run_whole_jobs_in_their_order(policy, order):
    lengths = [4, 2, 3]
    with client(policy, max_running=1) as c:
        with c.kernel.paused():
            handles = [
                c.spawn(p, max_tokens=n, temperature=0) for p, n in zip("abc", lengths, strict=True)
            ]
        for h in handles:
            h.wait()
        expected = [handles[i].pid for i in order for _ in range(lengths[i])]
        assert ran_order(c) == expected


@pytest.mark.parametrize("slots", [3, 1], ids=["resident", "swapping"])
def test_rr_gives_each_process_a_quantum_in_turn_and_output_is_unchanged(slots):
    prompts = ["first", "second", "third"]
    with client("rr", slots=slots, max_running=1, quantum=2) as c:
        with c.kernel.paused():
            handles = [c.spawn(p, max_tokens=4, temperature=0) for p in prompts]
        results = [h.wait() for h in handles]
        a, b, cc = (h.pid for h in handles)
        assert ran_order(c) == [a, a, b, b, cc, cc, a, a, b, b, cc, cc]
        if slots == 1:
            assert (c.kernel.pager.stats.swap_outs, c.kernel.pager.stats.swap_ins) == (3, 3)
    assert [r.text for r in results] == [solo_text(p, 4) for p in prompts]


def test_priority_arrival_starts_within_one_tick_and_the_victim_finishes_unchanged():
    with client("priority", slots=2, max_running=2) as c:
        engine = c.kernel.engine
        engine.close_gate()
        low = [c.spawn(p, max_tokens=40, temperature=0) for p in ("low one", "low two")]
        engine.allow(2)
        wait_until(lambda: len(engine.steps) == 2)
        assert all(h.state is ProcessState.RUNNING for h in low)
        high = c.spawn("urgent", priority=10, max_tokens=5, temperature=0)
        engine.open_gate()
        high_result = high.wait()
        process = c.kernel.get(high.pid)
        assert process.first_run_tick == process.spawn_tick
        results = [h.wait() for h in low]
        assert results[1].preemptions == 1  # the later arrival of the two is the victim
        assert results[0].preemptions == 0
        assert (c.kernel.pager.stats.swap_outs, c.kernel.pager.stats.swap_ins) == (1, 1)
    assert high_result.text == solo_text("urgent", 5)
    assert [r.text for r in results] == [solo_text("low one", 40), solo_text("low two", 40)]


def test_a_reniced_process_runs_in_its_new_place_and_its_output_is_unchanged():
    with client("priority", slots=2, max_running=1) as c:
        with c.kernel.paused():
            first = c.spawn("first", max_tokens=3, temperature=0)
            second = c.spawn("second", max_tokens=3, temperature=0)
            c.kernel.renice(second.pid, 5)  # before any step: it goes first
        results = [first.wait(), second.wait()]
        assert ran_order(c)[:3] == [second.pid] * 3
        assert c.kernel.get(second.pid).priority == 5
        with pytest.raises(InvalidRequestError, match="priority"):
            c.kernel.renice(first.pid, 10**6)
        with pytest.raises(ProcessTerminatedError):
            c.kernel.renice(first.pid, 1)
    assert [r.text for r in results] == [solo_text("first", 3), solo_text("second", 3)]


def test_suspended_process_makes_no_progress_until_resumed():
    with client("fcfs", max_running=2) as c:
        c.kernel.engine.close_gate()
        sleeper = c.spawn("sleeper", max_tokens=200, temperature=0)
        c.kernel.engine.allow(1)
        wait_until(lambda: sleeper.state is ProcessState.RUNNING)
        signal_through_gate(c.kernel.engine, sleeper.suspend)
        c.kernel.engine.open_gate()
        assert sleeper.state is ProcessState.SUSPENDED
        produced = c.kernel.get(sleeper.pid).num_output_tokens
        c.generate_text("meanwhile", max_tokens=10, temperature=0)
        assert c.kernel.get(sleeper.pid).num_output_tokens == produced
        sleeper.resume()
        assert sleeper.wait().text == solo_text("sleeper", 200)


def test_kill_ends_the_process_and_frees_its_slot():
    with client("fcfs", slots=2) as c:
        c.kernel.engine.close_gate()
        victim = c.spawn("victim", max_tokens=200, temperature=0)
        c.kernel.engine.allow(1)
        wait_until(lambda: victim.state is ProcessState.RUNNING)
        slot = c.kernel.get(victim.pid).slot
        signal_through_gate(c.kernel.engine, victim.kill)
        result = victim.wait()
        assert result.finish_reason is FinishReason.KILLED
        assert c.kernel.engine.cached_positions(slot) == 0
        assert c.kernel.memory_usage().free_slots == 2
        assert c.kernel.get(victim.pid).sampler.closed


def test_signals_to_dead_or_unknown_pids_raise_clear_errors():
    with client() as c:
        handle = c.spawn("short", max_tokens=2, temperature=0)
        handle.wait()
        with pytest.raises(ProcessTerminatedError, match=f"pid {handle.pid}: cannot kill"):
            handle.kill()
        with pytest.raises(NoSuchProcessError, match="pid 999: no such process"):
            c.kernel.get(999)


def test_max_tokens_and_end_of_generation_set_the_finish_reason():
    with client() as c:
        length = c.spawn("plain", max_tokens=6, temperature=0).wait()
        assert (length.finish_reason, length.usage.completion_tokens) == (FinishReason.LENGTH, 6)
        eos = c.spawn("ends soon $", max_tokens=50, temperature=0).wait()
        assert eos.finish_reason is FinishReason.STOP
        assert eos.usage.completion_tokens == 4  # three letters and the end token
        assert len(eos.text) == 3


def test_stop_string_ends_generation_before_it():
    full = solo_text("stopper", 12)
    stop = full[5:7]
    with client() as c:
        result = c.spawn("stopper", max_tokens=12, temperature=0, stop=[stop]).wait()
    assert result.finish_reason is FinishReason.STOP
    assert result.text == full[: full.index(stop)]


def test_stream_yields_the_final_text_piece_by_piece():
    with client() as c:
        handle = c.spawn("streamer", max_tokens=8, temperature=0)
        pieces = list(handle.stream())
        assert len(pieces) == 8
        assert "".join(pieces) == handle.wait().text


def test_seeded_sampling_is_reproducible():
    with client() as c:
        a, b, other = (
            c.generate_text("seeded", max_tokens=20, temperature=1.0, seed=seed)
            for seed in (7, 7, 8)
        )
    assert a == b
    assert a != other


@pytest.mark.parametrize(
    ("prompt", "kwargs", "error", "message"),
    [
        ("", {}, InvalidRequestError, "prompt: must not be empty"),
        (42, {}, InvalidRequestError, "prompt: must be a string"),
        ("x", {"max_tokens": 0}, InvalidRequestError, "max_tokens: must be >= 1"),
        ("x", {"temperature": -1}, InvalidRequestError, "temperature: must be between"),
        ("x", {"top_p": 0}, InvalidRequestError, "top_p: must be in (0, 1]"),
        ("x", {"priority": "high"}, InvalidRequestError, "priority: must be an integer"),
        ("x", {"priority": 10**6}, InvalidRequestError, "priority: must be between"),
        ("x" * 250, {"max_tokens": 10}, ContextLengthError, "context length of 256 tokens"),
        ("x", {"model": "gpt-9"}, UnknownModelError, "unknown model 'gpt-9'"),
    ],
)
def test_bad_input_is_refused_and_the_kernel_keeps_serving(prompt, kwargs, error, message):
    with client() as c:
        with pytest.raises(error) as info:
            c.spawn(prompt, **kwargs)
        assert message in str(info.value)
        assert c.generate_text("still here", max_tokens=3, temperature=0)


def test_engine_failure_ends_only_the_processes_in_that_step():
    with client() as c:
        c.kernel.engine.fail_next_step = True
        failed = c.spawn("unlucky", max_tokens=5, temperature=0).wait()
        assert failed.finish_reason is FinishReason.ERROR
        assert "injected failure" in (failed.error or "")
        assert c.generate_text("lucky", max_tokens=3, temperature=0) == solo_text("lucky", 3)


def test_close_kills_live_processes_and_refuses_new_ones():
    c = client()
    c.kernel.engine.close_gate()
    handle = c.spawn("forever", max_tokens=200, temperature=0)
    c.kernel.engine.allow(1)
    wait_until(lambda: handle.state is ProcessState.RUNNING)
    closer = threading.Thread(target=c.close)
    closer.start()
    wait_until(lambda: c.kernel.closed)
    c.kernel.engine.open_gate()  # let the step in flight finish; no other step follows
    closer.join()
    assert handle.wait(timeout=10).finish_reason is FinishReason.KILLED
    assert c.kernel.engine.closed
    with pytest.raises(KernelClosedError):
        c.spawn("late", max_tokens=1)


def test_ps_lists_every_process_with_its_state():
    with client() as c:
        done = c.spawn("done", max_tokens=2, temperature=0)
        done.wait()
        rows = {row.pid: row for row in c.ps()}
        assert rows[done.pid].state is ProcessState.TERMINATED
        assert rows[done.pid].output_tokens == 2
        assert rows[done.pid].finish_reason is FinishReason.LENGTH


def test_spawns_from_many_threads_all_complete():
    with client(max_running=4) as c:
        results = {}

        def worker(i: int) -> None:
            results[i] = c.generate_text(f"thread {i}", max_tokens=5, temperature=0)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == {i: solo_text(f"thread {i}", 5) for i in range(12)}


def test_finished_processes_leave_no_gap_between_running_slots():
    lengths = {"long one": 12, "short": 3, "long two": 12, "middle": 6}
    with client("fcfs", slots=4) as c:
        with c.kernel.paused():
            handles = [c.spawn(p, max_tokens=n, temperature=0) for p, n in lengths.items()]
        results = [h.wait() for h in handles]
        assert c.kernel.pager.stats.slot_moves >= 1
        for step in c.kernel.engine.steps:
            slots = sorted(item.slot for item in step)
            assert slots == list(range(slots[0], slots[0] + len(slots)))
    assert [r.text for r in results] == [solo_text(p, n) for p, n in lengths.items()]


def test_spawns_beyond_the_live_limit_are_refused_until_some_finish():
    engine = FakeEngine(num_slots=1)
    with Client(engine=engine, max_running=1, max_live_processes=2, keep_finished=1) as c:
        engine.close_gate()
        first = c.spawn("one", max_tokens=3, temperature=0)
        c.spawn("two", max_tokens=3, temperature=0)
        with pytest.raises(KernelBusyError, match="max_live_processes"):
            c.spawn("three", max_tokens=3, temperature=0)
        engine.open_gate()
        first.wait()
        c.spawn("four", max_tokens=3, temperature=0).wait()
        # Only the newest ended process stays in the table; handles still hold their results.
        with pytest.raises(NoSuchProcessError):
            c.kernel.get(first.pid)
        assert first.wait().usage.completion_tokens == 3


def test_max_running_defaults_to_what_the_engine_can_hold():
    with Client(engine=FakeEngine(num_slots=2)) as c:
        assert c.kernel.config.max_running == 2
        assert c.generate_text("small", max_tokens=3, temperature=0) == solo_text("small", 3)
    with pytest.raises(InvalidRequestError, match="max_running: must be <= the engine's 2 slots"):
        Client(engine=FakeEngine(num_slots=2), max_running=3)


def test_an_interactive_arrival_cuts_a_background_step_short_and_nothing_changes():
    with client("fair", slots=2, max_running=2) as c:
        engine = c.kernel.engine
        engine.close_gate()
        batch = c.spawn("batch line", priority=-100, max_tokens=20, temperature=0)
        wait_until(lambda: engine.at_gate)  # its first step is under way
        urgent = c.spawn("urgent", priority=0, max_tokens=5, temperature=0)
        assert engine.cut  # asked while the background-only step ran
        engine.open_gate()
        urgent_text, batch_text = urgent.wait().text, batch.wait().text
        assert c.kernel.stats.interrupted_steps == 1
        first = engine.steps[0]  # the cut step left no record: the newcomer's prompt ran first
        assert len(first) == 1 and list(first[0].tokens) == engine.tokenize("urgent")
    assert (urgent_text, batch_text) == (solo_text("urgent", 5), solo_text("batch line", 20))


def test_a_step_with_interactive_work_in_it_is_never_cut_short():
    with client("fair", slots=3, max_running=3) as c:
        engine = c.kernel.engine
        engine.close_gate()
        mine = c.spawn("mine", priority=0, max_tokens=20, temperature=0)
        background = c.spawn("later", priority=-100, max_tokens=20, temperature=0)
        while not any(len(step) == 2 for step in engine.steps):  # both decode in one step
            done = len(engine.steps)
            engine.allow(1)  # one step through, then the next one waits at the gate
            wait_until(lambda: len(engine.steps) > done and engine.at_gate)  # noqa: B023
        assert not c.kernel.ticks.cuts.cuttable  # the step at the gate is mixed
        other = c.spawn("other", priority=0, max_tokens=5, temperature=0)
        assert not engine.cut
        engine.open_gate()
        texts = [h.wait().text for h in (mine, background, other)]
        assert c.kernel.stats.interrupted_steps == 0
    assert texts == [solo_text("mine", 20), solo_text("later", 20), solo_text("other", 5)]


def test_after_a_cut_the_backgrounds_next_step_runs_whole():
    with client("fair", slots=3, max_running=3) as c:
        engine = c.kernel.engine
        engine.close_gate()
        background = c.spawn("batch line", priority=-100, max_tokens=20, temperature=0)
        wait_until(lambda: engine.at_gate)
        first = c.spawn("one", priority=0, max_tokens=1, temperature=0)
        assert engine.cut
        engine.allow(2)  # the cut step, then "one" alone (it ends with its first token)
        wait_until(lambda: first.state is ProcessState.TERMINATED and engine.at_gate)
        assert c.kernel.stats.interrupted_steps == 1 and not c.kernel.ticks.cuts.cuttable
        second = c.spawn("two", priority=0, max_tokens=1, temperature=0)
        assert not engine.cut  # the background's redone step is not cut again
        engine.open_gate()
        texts = [h.wait().text for h in (background, first, second)]
        assert c.kernel.stats.interrupted_steps == 1
    assert texts == [solo_text("batch line", 20), solo_text("one", 1), solo_text("two", 1)]
