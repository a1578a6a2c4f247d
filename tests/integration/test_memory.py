"""Paged KV memory with the real engine: prefix sharing, swap to RAM and disk, accounting."""

from __future__ import annotations

import pytest

from llmasos import Client, FinishReason, ProcessState
from tests.integration.conftest import PROMPTS
from tests.unit.test_kernel import wait_until

SYSTEM = (
    "You are a careful assistant for an operating systems course. You answer in short, "
    "precise sentences, you define every term you use, and you never invent facts. "
) * 3
TASKS = [
    "Task: explain what a context switch is.\nAnswer:",
    "Task: explain what a page table is.\nAnswer:",
    "Task: explain what a scheduler does.\nAnswer:",
    "Task: explain what swap space is for.\nAnswer:",
]


def books_match_engine(client: Client) -> bool:
    kernel = client.kernel
    return all(
        kernel.memory.tokens(slot) == kernel.engine.cached_positions(slot)
        for slot in range(kernel.engine.info.num_slots)
    )


def test_a_shared_prefix_gives_exactly_the_output_computed_without_sharing(model_path, solo):
    with Client(model=str(model_path), num_slots=4, max_running=4, context_length=1024) as c:
        first = c.spawn(SYSTEM + TASKS[0], max_tokens=24, temperature=0).wait()
        second = c.spawn(SYSTEM + TASKS[1], max_tokens=24, temperature=0).wait()
        report = c.kernel.memory_report()
        assert report.prefix_hits == 1
        assert report.prefix_tokens_reused >= len(c.kernel.engine.tokenize(SYSTEM)) - 1
        assert books_match_engine(c)
    assert first.token_ids == solo(SYSTEM + TASKS[0], 24)
    assert second.token_ids == solo(SYSTEM + TASKS[1], 24)


def test_a_prefix_is_shared_from_a_process_that_is_still_generating(model_path, solo):
    with Client(model=str(model_path), num_slots=4, max_running=4, context_length=1024) as c:
        runner = c.spawn(SYSTEM + TASKS[2], max_tokens=64, temperature=0)
        process = c.kernel.get(runner.pid)
        wait_until(lambda: process.num_output_tokens >= 2)
        sharer = c.spawn(SYSTEM + TASKS[3], max_tokens=24, temperature=0)
        results = runner.wait(), sharer.wait()
        report = c.kernel.memory_report()
        assert (report.prefix_hits, report.prefix_copies) == (1, 1)
        assert books_match_engine(c)
    assert results[0].token_ids == solo(SYSTEM + TASKS[2], 64)
    assert results[1].token_ids == solo(SYSTEM + TASKS[3], 24)


def two_slots(policy: str, model_path, swap_directory) -> Client:
    """A kernel with 2 slots whose swap RAM holds one snapshot: the rest spill to disk."""
    return Client(
        policy,
        model=str(model_path),
        num_slots=2,
        max_running=2,
        quantum=4,
        context_length=1024,
        swap_bytes=1_500_000,
        swap_directory=swap_directory,
    )


def test_four_times_more_processes_than_fit_all_finish_through_swap_to_ram_and_disk(
    model_path, solo, tmp_path
):
    prompts = PROMPTS  # 8 processes, 2 slots
    with two_slots("rr", model_path, tmp_path) as c:
        with c.kernel.paused():
            handles = [c.spawn(p, max_tokens=20, temperature=0) for p in prompts]
        results = [h.wait() for h in handles]
        report = c.kernel.memory_report()
        assert report.swap_outs >= 12 and report.swap_outs == report.swap_ins
        assert report.swap_spills > 0
        assert report.swap_ram_bytes == report.swap_disk_bytes == 0
        assert books_match_engine(c)
    assert [r.token_ids for r in results] == [solo(p, 20) for p in prompts]
    assert not list(tmp_path.rglob("*.kv"))


@pytest.mark.parametrize("policy", ["fcfs", "sjf", "rr", "priority", "fair"])
def test_a_kv_cache_four_times_too_small_fails_no_request_under_any_policy(
    policy, model_path, solo, tmp_path
):
    """8 processes on 2 slots, with mixed priorities and lengths, all at once: each waits or is
    swapped (to disk past the small RAM budget), and each ends with its exact text alone."""
    prompts, lengths = PROMPTS, [12 + 4 * (i % 3) for i in range(len(PROMPTS))]
    with two_slots(policy, model_path, tmp_path) as c:
        with c.kernel.paused():
            handles = [
                c.spawn(p, max_tokens=n, temperature=0, priority=i % 3)
                for i, (p, n) in enumerate(zip(prompts, lengths, strict=True))
            ]
        results = [h.wait() for h in handles]
        report = c.kernel.memory_report()
        assert report.used_pages == 0 and report.swap_ram_bytes == report.swap_disk_bytes == 0
        assert books_match_engine(c)
    assert all(r.finish_reason in (FinishReason.LENGTH, FinishReason.STOP) for r in results)
    assert [r.token_ids for r in results] == [
        solo(p, n) for p, n in zip(prompts, lengths, strict=True)
    ]


def test_page_accounting_agrees_with_the_engine_after_a_long_mixed_run(model_path):
    with Client(
        "priority",
        model=str(model_path),
        num_slots=3,
        max_running=3,
        context_length=1024,
        page_size=32,
    ) as c:
        handles = []
        for i in range(10):
            prompt = SYSTEM + TASKS[i % 4] if i % 2 else PROMPTS[i % len(PROMPTS)]
            handles.append(c.spawn(prompt, max_tokens=12 + 4 * i, temperature=0, priority=i % 3))
        victim = handles[7]
        wait_until(lambda: victim.state is not ProcessState.NEW)
        if victim.state is not ProcessState.TERMINATED:
            victim.kill()
        for h in handles:
            assert h.wait().finish_reason in (
                FinishReason.LENGTH,
                FinishReason.KILLED,
                FinishReason.STOP,
            )
        report = c.kernel.memory_report()
        assert books_match_engine(c)
        pages = sum(-(-c.kernel.engine.cached_positions(s) // 32) for s in range(3))
        assert report.used_pages == 0
        assert report.cached_pages == pages
        assert report.free_pages == report.total_pages - pages
        assert report.prefix_hits >= 1
