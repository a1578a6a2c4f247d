"""Batching, chunking and context switches never change what a process generates."""

from __future__ import annotations

from llmasos import Client, ProcessState
from llmasos.engine.base import BatchItem
from llmasos.engine.llamacpp import LlamaCppEngine
from llmasos.sampling import SamplingParams
from tests.integration.conftest import PROMPTS
from tests.unit.test_kernel import wait_until


def test_eight_processes_together_match_each_run_alone(model_path, solo):
    # A small token budget splits the long prompts into chunks that share steps with decodes.
    with Client(
        model=str(model_path), max_running=8, num_slots=8, context_length=1024, max_batch_tokens=64
    ) as client:
        with client.kernel.paused():
            handles = [client.spawn(p, max_tokens=32, temperature=0) for p in PROMPTS]
        together = [h.wait().token_ids for h in handles]
        assert max(len(r.batch) for r in client.kernel.trace) == 8
    assert together == [solo(p, 32) for p in PROMPTS]


def test_snapshot_restored_into_another_slot_continues_identically(model_path):
    engine = LlamaCppEngine(model_path, model_name="test", num_slots=4, context_length=512)
    greedy = SamplingParams(temperature=0)

    def decode(slot: int, tokens: list[int], sampler, steps: int) -> list[int]:
        out = []
        for _ in range(steps):
            (token,) = engine.step([BatchItem(slot, tokens[-1:], len(tokens) - 1, sampler)])
            tokens.append(token)
            out.append(token)
        return out

    try:
        prompt = engine.tokenize(PROMPTS[2])
        reference_sampler = engine.new_sampler(greedy, 0)
        first = engine.step([BatchItem(0, prompt, 0, reference_sampler)])[0]
        reference = decode(0, [*prompt, first], reference_sampler, 30)
        engine.release(0)

        sampler = engine.new_sampler(greedy, 0)
        tokens = [*prompt, engine.step([BatchItem(0, prompt, 0, sampler)])[0]]
        before = decode(0, tokens, sampler, 10)
        state = engine.snapshot(0)
        engine.release(0)
        assert engine.cached_positions(0) == 0
        other = engine.tokenize(PROMPTS[3])  # something else now lives in the engine
        engine.step([BatchItem(1, other, 0, None)])
        engine.restore(state, 3)
        assert engine.cached_positions(3) == len(tokens) - 1
        after = decode(3, tokens, sampler, 20)
        assert [*before, *after] == reference
    finally:
        engine.close()


def test_preempted_low_priority_process_finishes_with_its_unpreempted_text(model_path, solo):
    with Client(
        "priority", model=str(model_path), max_running=2, num_slots=2, context_length=1024
    ) as client:
        low = [client.spawn(p, max_tokens=48, temperature=0) for p in PROMPTS[:2]]
        wait_until(lambda: all(h.state is ProcessState.RUNNING for h in low))
        high = client.spawn(PROMPTS[4], priority=5, max_tokens=8, temperature=0)
        high_result = high.wait()
        process = client.kernel.get(high.pid)
        assert process.first_run_tick == process.spawn_tick  # it ran in its very first tick
        low_results = [h.wait() for h in low]
        assert [r.preemptions for r in low_results] == [0, 1]
        assert client.kernel.memory_usage().owned_slots == 0  # ended: nothing owned any more
    assert high_result.token_ids == solo(PROMPTS[4], 8)
    assert [r.token_ids for r in low_results] == [solo(p, 48) for p in PROMPTS[:2]]


def test_round_robin_with_swapping_gives_the_same_text(model_path, solo):
    with Client(
        "rr", model=str(model_path), max_running=1, num_slots=1, quantum=3, context_length=1024
    ) as client:
        with client.kernel.paused():
            handles = [client.spawn(p, max_tokens=9, temperature=0) for p in PROMPTS[4:7]]
        results = [h.wait() for h in handles]
        order = [r.batch[0][0] for r in client.kernel.trace if r.generated_tokens]
    a, b, c = (h.pid for h in handles)
    assert (
        order
        == [a] * 3 + [b] * 3 + [c] * 3 + [a] * 3 + [b] * 3 + [c] * 3 + [a] * 3 + [b] * 3 + [c] * 3
    )
    assert [r.token_ids for r in results] == [solo(p, 9) for p in PROMPTS[4:7]]


def test_seeded_sampling_is_reproducible_alone_and_in_a_batch(model_path):
    sampling = {"max_tokens": 24, "temperature": 0.9, "top_p": 0.9}
    with Client(model=str(model_path), max_running=4, num_slots=4, context_length=512) as client:
        alone = client.spawn(PROMPTS[2], seed=1234, **sampling).wait().token_ids
        with client.kernel.paused():
            batch = [client.spawn(PROMPTS[2], seed=s, **sampling) for s in (1234, 1234, 99)]
        same, again, other = (h.wait().token_ids for h in batch)
    assert alone == same == again
    assert other != alone


def test_greedy_fast_path_picks_what_llama_cpp_greedy_sampler_picks(model_path):
    import llama_cpp

    engine = LlamaCppEngine(
        model_path, model_name="test", num_slots=len(PROMPTS), context_length=512
    )
    try:
        fast = engine.new_sampler(SamplingParams(temperature=0), 0)
        items = [BatchItem(i, engine.tokenize(p), 0, fast) for i, p in enumerate(PROMPTS)]
        picked = engine.step(items)
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        ends = [sum(len(it.tokens) for it in items[: i + 1]) - 1 for i in range(len(items))]
        reference = [llama_cpp.llama_sampler_sample(chain, engine._ctx, row) for row in ends]
        llama_cpp.llama_sampler_free(chain)
        assert picked == reference
    finally:
        engine.close()


def test_an_urgent_prompt_runs_its_steps_alone_and_the_others_go_on_exactly(model_path, solo):
    """Priority isolation: under load, a higher-priority newcomer runs in the very next step,
    and the steps that compute its prompt hold nothing else (they are as short as alone)."""
    others = [*PROMPTS[:3], *PROMPTS[4:7]]
    with Client(
        "priority", model=str(model_path), max_running=8, num_slots=8, context_length=1024
    ) as client:
        low = [client.spawn(p, max_tokens=40, temperature=0) for p in others]
        wait_until(lambda: all(h.state is ProcessState.RUNNING for h in low))
        urgent = client.spawn(PROMPTS[3], priority=5, max_tokens=6, temperature=0)
        urgent_tokens = urgent.wait().token_ids
        process = client.kernel.get(urgent.pid)
        assert process.first_run_tick == process.spawn_tick
        prompt_steps = [
            r.batch for r in client.kernel.trace if any(pid == urgent.pid for pid, _ in r.batch)
        ][:1]
        assert prompt_steps == [((urgent.pid, len(process.prompt_tokens)),)]
        low_tokens = [h.wait().token_ids for h in low]
        assert all(h.wait().preemptions == 0 for h in low)  # held in place, not preempted
    assert urgent_tokens == solo(PROMPTS[3], 6)
    assert low_tokens == [solo(p, 40) for p in others]
