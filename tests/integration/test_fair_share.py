"""The fair policy on the real engine: an owner flooding the kernel does not starve another, and
an interactive arrival cuts a background step short without changing anyone's output."""

from __future__ import annotations

from llmasos import Client, FinishReason, ProcessState
from llmasos.sampling import SamplingParams
from tests.integration.conftest import PROMPTS
from tests.unit.test_kernel import wait_until


def test_a_calm_owner_runs_at_once_beside_a_flood_that_holds_every_slot(model_path):
    with Client("fair", model=str(model_path), max_running=2, num_slots=2, context_length=512) as c:
        kernel = c.kernel
        long = SamplingParams(max_tokens=200, temperature=0)
        flood = [kernel.spawn(PROMPTS[i % 3], long, owner="flood") for i in range(6)]
        wait_until(lambda: sum(p.state is ProcessState.RUNNING for p in flood) == 2)
        with kernel.paused():  # the flood holds both slots when the calm request arrives
            assert sum(p.state is ProcessState.RUNNING for p in flood) == 2
            short = SamplingParams(max_tokens=4, temperature=0)
            calm = kernel.spawn(PROMPTS[4], short, owner="calm")

        result = c.process(calm.pid).wait()
        unfinished = [p for p in flood if p.state is not ProcessState.TERMINATED]
        for p in unfinished:
            c.process(p.pid).kill()

    assert result.finish_reason is FinishReason.LENGTH
    assert result.usage.completion_tokens == 4
    assert result.preemptions == 0
    # It waited no longer than the first request on an idle kernel did: a flood process gave
    # up its slot (one, once); under fcfs it would have waited for all six.
    first = flood[0]
    assert calm.first_run_tick - calm.spawn_tick == first.first_run_tick - first.spawn_tick
    assert sum(p.preemptions for p in flood) == 1
    assert len(unfinished) == 6


LONG_PROMPT = " ".join(
    f"Ledger line {i}: the river barge carried {i * 7 % 13} crates." for i in range(40)
)  # about 600 tokens: one step of a second or more on one thread
SETTINGS = {"num_slots": 2, "context_length": 2048, "max_batch_tokens": 1024, "n_threads": 1}


def test_an_urgent_arrival_cuts_a_background_prompt_step_short_and_outputs_stay_exact(model_path):
    greedy = {"temperature": 0}
    with Client("fair", model=str(model_path), **SETTINGS) as c:
        background = c.spawn(LONG_PROMPT, priority=-100, max_tokens=8, **greedy)
        prompt_step = lambda: c.kernel.ticks.cuts.cuttable and not c.kernel.trace  # noqa: E731
        wait_until(prompt_step, timeout=60)  # its prompt's step is under way
        urgent = c.spawn(PROMPTS[0], priority=0, max_tokens=8, **greedy)
        texts = (urgent.wait().text, background.wait().text)
        assert c.kernel.stats.interrupted_steps == 1
        ran = [{pid for pid, _ in record.batch} for record in c.kernel.trace]
        first = {
            pid: next(i for i, r in enumerate(ran) if pid in r)
            for pid in (urgent.pid, background.pid)
        }
        assert first[urgent.pid] < first[background.pid]  # the cut step left no record
    with Client("fair", model=str(model_path), **SETTINGS) as alone:
        solo = tuple(
            alone.generate_text(p, max_tokens=8, **greedy) for p in (PROMPTS[0], LONG_PROMPT)
        )
    assert texts == solo
