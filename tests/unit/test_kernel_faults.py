"""The kernel when things go wrong, on the fake engine: restore and swap-in failures, a refused
truncate, an unexpected exception in a tick, a close racing spawns, a resumed process that
waits for its owner's quota."""

from __future__ import annotations

import logging
import threading

import pytest

from llmasos import Client, FinishReason, KernelClosedError, ProcessState
from llmasos.kernel.process import Signal
from llmasos.kernel.swap import SwapLocation
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_kernel import signal_through_gate, solo_text, wait_until
from tests.unit.test_memory_kernel import two_of_ann


def client(slots: int = 2, **options) -> Client:
    options.setdefault("max_running", slots)
    return Client(engine=FakeEngine(num_slots=slots, context_length=256), **options)


def swapped_pair(c: Client):
    """Two low-priority runners on two slots; an urgent third swaps the later one out."""
    engine = c.kernel.engine
    engine.close_gate()
    low = [c.spawn(p, max_tokens=30, temperature=0) for p in ("low one", "low two")]
    engine.allow(2)
    wait_until(lambda: len(engine.steps) == 2)
    urgent = c.spawn("urgent", priority=5, max_tokens=3, temperature=0)
    return low, urgent


def test_a_failed_restore_ends_that_process_with_the_error_and_the_others_finish():
    with client(policy="priority") as c:
        (first, second), urgent = swapped_pair(c)
        c.kernel.engine.fail_next_restore = True
        c.kernel.engine.open_gate()
        assert urgent.wait().text == solo_text("urgent", 3)
        failed = second.wait()
        assert failed.finish_reason is FinishReason.ERROR
        assert "restore into slot" in failed.error
        assert first.wait().text == solo_text("low one", 30)
        assert c.generate_text("after", max_tokens=4, temperature=0) == solo_text("after", 4)


def test_a_swap_in_that_cannot_read_its_snapshot_fails_clearly_and_never_recomputes(tmp_path):
    with client(policy="priority", swap_bytes=1, swap_directory=tmp_path) as c:
        (first, second), urgent = swapped_pair(c)
        engine = c.kernel.engine
        engine.allow(1)  # the urgent one's first step: the victim is on disk now
        wait_until(lambda: c.kernel.pager.swap.location(second.pid) is SwapLocation.DISK)
        for snapshot in tmp_path.rglob("*.kv"):
            snapshot.unlink()
        engine.open_gate()
        failed = second.wait()
        assert failed.finish_reason is FinishReason.ERROR
        assert "KV snapshot could not be read" in failed.error
        assert failed.usage.completion_tokens < 30  # it did not start over from its prompt
        assert first.wait().text == solo_text("low one", 30)
        assert urgent.wait().text == solo_text("urgent", 3)


def test_a_cached_slot_the_engine_cannot_trim_is_dropped_and_the_prompt_recomputed():
    with client(min_prefix_tokens=4) as c:
        first = c.spawn("a shared beginning", max_tokens=6, temperature=0).wait()
        c.kernel.engine.refuse_truncate = True
        follow_up = "a shared beginning" + first.text[:2] + " more"
        result = c.spawn(follow_up, max_tokens=5, temperature=0).wait()
        report = c.kernel.memory_report()
    assert result.text == solo_text(follow_up, 5)
    assert result.usage.cached_tokens == 0
    assert (report.prefix_hits, report.prefix_misses) == (0, 2)


def test_an_unexpected_error_in_a_tick_fails_its_processes_with_an_incident_id(caplog):
    with client() as c, caplog.at_level(logging.ERROR, logger="llmasos.kernel.kernel"):
        c.kernel.engine.crash_next_step = True
        failed = c.spawn("unlucky", max_tokens=5, temperature=0).wait()
        assert failed.finish_reason is FinishReason.ERROR
        assert failed.error.startswith("internal error (incident ")
        assert "secret detail" not in failed.error  # details stay in the log
        incident = failed.error.split("incident ")[1].split(")")[0]
        logged = [r for r in caplog.records if incident in r.getMessage()]
        assert logged and "secret detail" in str(logged[0].exc_info[1])
        assert c.generate_text("lucky", max_tokens=3, temperature=0) == solo_text("lucky", 3)
        assert c.kernel.memory_usage().owned_slots == 0


def test_close_waits_for_a_spawn_that_is_tokenising_before_it_frees_the_engine():
    c = client()
    engine = c.kernel.engine
    engine.tokenize_gate = threading.Event()
    outcome: list[object] = []
    spawner = threading.Thread(
        target=lambda: outcome.append(c.spawn("racing", max_tokens=200, temperature=0))
    )
    spawner.start()
    wait_until(lambda: c.kernel._calls == 1)  # inside tokenize, holding the engine
    closer = threading.Thread(target=c.close)
    closer.start()
    wait_until(lambda: c.kernel.closed)
    assert not engine.freed  # close waits for the call in flight
    engine.tokenize_gate.set()
    spawner.join(10)
    closer.join(10)
    assert engine.freed
    (handle,) = outcome  # the spawn completed: it was not cut off by the close
    assert handle.wait(timeout=10).finish_reason in (FinishReason.KILLED, FinishReason.LENGTH)
    with pytest.raises(KernelClosedError):
        c.spawn("late", max_tokens=1)


def test_spawns_racing_a_close_each_complete_or_get_a_clear_error():
    for _ in range(50):
        c = client(slots=4)
        outcomes: list[str] = []

        def spawn(c=c, outcomes=outcomes) -> None:
            try:
                result = c.spawn("race", max_tokens=3, temperature=0).wait(timeout=10)
                outcomes.append(result.finish_reason.value)
            except KernelClosedError:
                outcomes.append("closed")

        threads = [threading.Thread(target=spawn) for _ in range(4)]
        for t in threads:
            t.start()
        c.close()
        for t in threads:
            t.join(10)
        assert len(outcomes) == 4
        assert set(outcomes) <= {"length", "killed", "closed"}


def test_a_resumed_process_that_waits_for_its_owners_quota_is_admitted_and_runs():
    with client(page_size=16, max_pages_per_owner=2) as c:
        kernel = c.kernel
        first, second = two_of_ann(kernel)
        assert second.state is ProcessState.NEW
        signal_through_gate(kernel.engine, lambda: kernel.signal(second.pid, Signal.SUSPEND))
        assert second.state is ProcessState.SUSPENDED
        kernel.engine.open_gate()
        first.done.wait(10)  # ann's quota is free again while the second sleeps
        kernel.signal(second.pid, Signal.RESUME)
        assert second.done.wait(10), "the resumed process was never admitted"
        assert second.result.text == solo_text("second", 20)
