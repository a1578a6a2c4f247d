"""A decode cut short from another thread (Engine.interrupt) leaves every slot as it was before
the step, also when llama.cpp ran the step as several ubatches and kept the first, and the step
done again gives what it would have given."""

from __future__ import annotations

import threading
import time

import pytest

from llmasos.engine.base import BatchItem, StepInterrupted
from llmasos.engine.llamacpp import LlamaCppEngine
from llmasos.sampling import SamplingParams

SLOTS = (0, 2)  # not neighbours: llama.cpp runs their tokens as two ubatches
TEXTS = ("The barge carried crates of salt down the river. ", "Bells rang over the old town. ")


def test_a_cut_step_is_undone_in_every_slot_and_done_again_exactly(model_path):
    engine = LlamaCppEngine(
        model_path, model_name="m", num_slots=4, context_length=1024, max_batch_tokens=1024,
        n_threads=1,
    )  # fmt: skip
    greedy = SamplingParams.build(max_tokens=1, temperature=0)
    prompts = [engine.tokenize(text * 40)[:300] for text in TEXTS]

    def step(slots: tuple[int, ...]) -> list[int | None]:
        items = [
            BatchItem(slot, prompts[i], 0, engine.new_sampler(greedy, 0))
            for i, slot in enumerate(slots)
        ]
        return engine.step(items)

    try:
        started = time.perf_counter()
        step(SLOTS[:1])
        one_ubatch_s = time.perf_counter() - started
        engine.release(SLOTS[0])
        reference = step(SLOTS)
        for slot in SLOTS:
            engine.release(slot)
        threading.Timer(1.5 * one_ubatch_s, engine.interrupt).start()  # in the second ubatch
        with pytest.raises(StepInterrupted):
            step(SLOTS)
        assert [engine.cached_positions(slot) for slot in SLOTS] == [0, 0]
        engine.interrupt(False)
        assert step(SLOTS) == reference
        assert [engine.cached_positions(slot) for slot in SLOTS] == [len(p) for p in prompts]
    finally:
        engine.close()
