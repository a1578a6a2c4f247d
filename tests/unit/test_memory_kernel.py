"""Paged memory in the kernel, on the fake engine: prefix reuse, swap, accounting and quotas."""

from __future__ import annotations

import pytest

from llmasos import Client, ProcessState, QuotaExceededError
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import Process
from llmasos.sampling import SamplingParams
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_kernel import solo_text, wait_until


def client(slots=4, **options) -> Client:
    options.setdefault("max_running", slots)
    return Client(engine=FakeEngine(num_slots=slots, context_length=256), **options)


def assert_books_match_engine(c: Client) -> None:
    for slot in range(c.kernel.engine.info.num_slots):
        assert c.kernel.memory.tokens(slot) == c.kernel.engine.cached_positions(slot), slot


def test_a_prompt_that_extends_a_finished_one_takes_over_its_cached_slot():
    with client(min_prefix_tokens=4) as c:
        first = c.spawn("a shared beginning", max_tokens=6, temperature=0).wait()
        follow_up = "a shared beginning" + first.text[:3] + " and more"
        result = c.spawn(follow_up, max_tokens=5, temperature=0).wait()
        report = c.kernel.memory_report()
        assert (report.prefix_hits, report.prefix_copies) == (1, 0)
        # BOS + the first prompt + the three generated letters were not recomputed
        assert report.prefix_tokens_reused == 1 + len("a shared beginning") + 3
        assert_books_match_engine(c)
    assert result.text == solo_text(follow_up, 5)


def test_a_prefix_is_copied_from_a_process_that_is_still_running():
    with client(min_prefix_tokens=4) as c:
        engine = c.kernel.engine
        engine.close_gate()
        runner = c.spawn("the long system prompt", max_tokens=60, temperature=0)
        engine.allow(3)
        wait_until(lambda: len(engine.steps) == 3)
        sharer = c.spawn("the long system prompt, then a task", max_tokens=5, temperature=0)
        engine.open_gate()
        results = runner.wait(), sharer.wait()
        report = c.kernel.memory_report()
        assert (report.prefix_hits, report.prefix_copies, engine.copies) == (1, 1, 1)
        assert report.prefix_tokens_reused == 1 + len("the long system prompt")
    assert results[0].text == solo_text("the long system prompt", 60)
    assert results[1].text == solo_text("the long system prompt, then a task", 5)


def test_short_prefixes_are_recomputed_rather_than_copied():
    with client(min_prefix_tokens=50) as c:
        c.spawn("tiny", max_tokens=3, temperature=0).wait()
        c.spawn("tiny too", max_tokens=3, temperature=0).wait()
        report = c.kernel.memory_report()
    assert (report.prefix_hits, report.prefix_misses) == (0, 2)


@pytest.mark.parametrize(("swap_bytes", "to_disk"), [(1 << 20, False), (64, True)])
def test_four_times_more_processes_than_slots_all_finish_exactly(tmp_path, swap_bytes, to_disk):
    prompts = [f"process number {i}" for i in range(8)]
    with client(
        slots=2, policy="rr", quantum=3, swap_bytes=swap_bytes, swap_directory=tmp_path
    ) as c:
        with c.kernel.paused():
            handles = [c.spawn(p, max_tokens=10, temperature=0) for p in prompts]
        results = [h.wait() for h in handles]
        report = c.kernel.memory_report()
        assert report.swap_outs >= 6
        assert report.swap_outs == report.swap_ins
        assert (report.swap_spills > 0) == to_disk
        assert report.swap_ram_bytes == report.swap_disk_bytes == 0
        assert_books_match_engine(c)
    assert [r.text for r in results] == [solo_text(p, 10) for p in prompts]
    assert not list(tmp_path.rglob("*.kv"))


def test_page_accounting_agrees_with_the_engine_during_and_after_a_mixed_run():
    with client(slots=3, policy="priority", page_size=4) as c:
        engine = c.kernel.engine
        engine.close_gate()
        handles = [
            c.spawn(f"mixed {i}", max_tokens=5 + 3 * i, temperature=0, priority=i % 3)
            for i in range(7)
        ]
        for step in range(1, 13):
            engine.allow(1)
            # The kernel now waits inside its next step: the books must match the engine.
            wait_until(lambda step=step: len(engine.steps) >= step and engine.at_gate)
            assert_books_match_engine(c)
        engine.open_gate()
        for h in handles:
            h.wait()
        report = c.kernel.memory_report()
        assert_books_match_engine(c)
        expected_pages = sum(-(-c.kernel.memory.tokens(s) // 4) for s in range(3))
        assert report.used_pages + report.cached_pages == expected_pages
        assert report.free_pages == report.total_pages - expected_pages


def test_a_process_over_its_page_quota_is_refused_up_front():
    with client(page_size=16, max_pages_per_process=2) as c:
        with pytest.raises(QuotaExceededError, match="need 3 KV pages; the per-process quota is 2"):
            c.spawn("x" * 20, max_tokens=20)
        assert c.generate_text("fits", max_tokens=5, temperature=0)


def two_of_ann(kernel: Kernel, *others: tuple[str, str]) -> tuple[Process, Process]:
    """With the gate closed and ann's quota room for one: ann's first process runs, her second
    waits for the quota; `others` (owner, prompt) are spawned between them and the step."""
    kernel.engine.close_gate()
    first = kernel.spawn("first", SamplingParams(max_tokens=20, temperature=0), owner="ann")
    second = kernel.spawn("second", SamplingParams(max_tokens=20, temperature=0), owner="ann")
    for owner, prompt in others:
        kernel.spawn(prompt, SamplingParams(max_tokens=5, temperature=0), owner=owner)
    kernel.engine.allow(1)
    wait_until(lambda: first.state is ProcessState.RUNNING)
    return first, second


def test_an_owner_over_quota_waits_until_its_earlier_processes_end():
    with client(page_size=16, max_pages_per_owner=2) as c:
        kernel = c.kernel
        first, second = two_of_ann(kernel, ("bob", "other"))
        other = next(p for p in kernel.processes() if p.owner == "bob")
        assert second.state is ProcessState.NEW  # ann's quota is taken by the first
        kernel.engine.open_gate()
        other.done.wait(10)
        assert other.result.finish_reason.value == "length"
        first.done.wait(10)
        second.done.wait(10)
        assert second.result.text == solo_text("second", 20)
        with pytest.raises(QuotaExceededError, match="owner 'ann'"):
            kernel.spawn("x" * 40, SamplingParams(max_tokens=10), owner="ann")


def test_newcomers_sharing_a_prompt_start_wait_for_one_to_compute_it():
    system = "a long shared system prompt for every agent; "
    prompts = [system + f"agent {i}" for i in range(4)]
    with client(slots=4, min_prefix_tokens=8) as c:
        with c.kernel.paused():
            handles = [c.spawn(p, max_tokens=4, temperature=0) for p in prompts]
        results = [h.wait() for h in handles]
        report = c.kernel.memory_report()
        assert report.prefix_hits == 3 and report.prefix_misses == 1
        shared = len(c.kernel.engine.tokenize(system + "agent "))
        assert report.prefix_tokens_reused == 3 * shared
        first_step = c.kernel.engine.steps[0]
        assert len(first_step) == 1  # only the first agent computed the shared start
    assert [r.text for r in results] == [solo_text(p, 4) for p in prompts]
