"""The fair policy on the real engine: an owner flooding the kernel does not starve another."""

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
