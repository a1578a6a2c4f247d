"""A private job's budget in numbers, with opacus's own accountant: the noise that spends the
budget, and the check that refuses at submission a budget no step fits."""

from __future__ import annotations

import pytest

from llmasos import DP, TrainingTask
from llmasos.errors import UnprocessableError
from llmasos.jobs.privacy_budget import PlanSize, check_budget, epsilon_after, noise_for


def task(**fields) -> TrainingTask:
    return TrainingTask(model="m", data="d", **fields)


def test_a_plan_is_cut_into_batches_steps_and_a_sampling_rate():
    assert PlanSize.of(10, task(batch_size=4, epochs=3)) == PlanSize(4, 3, 9, 0.4)
    assert PlanSize.of(3, task(batch_size=4)) == PlanSize(3, 1, 1, 1.0)  # fewer records


def test_the_noise_chosen_spends_the_budget_over_the_planned_steps():
    size = PlanSize.of(48, task(batch_size=4, epochs=2))
    assert noise_for(task(), size) is None
    assert noise_for(task(privacy=DP(epsilon=8, noise_multiplier=0.7)), size) == 0.7
    noise = noise_for(task(privacy=DP(epsilon=8)), size)
    spent = epsilon_after(noise, size.sample_rate, size.total_steps, 1e-5)
    assert 7.5 < spent <= 8.0
    assert epsilon_after(noise, size.sample_rate, 1, 1e-5) < spent


def test_a_budget_no_step_fits_is_refused_naming_the_field():
    with pytest.raises(UnprocessableError, match="too small for 6 steps") as tiny:
        check_budget(task(batch_size=4, privacy=DP(epsilon=0.01)), 24)
    assert tiny.value.field == "privacy.epsilon"
    with pytest.raises(UnprocessableError, match=r"one step at noise_multiplier 0\.3 spends"):
        check_budget(task(privacy=DP(epsilon=1, noise_multiplier=0.3)), 24)
    check_budget(task(epochs=3, privacy=DP(epsilon=4.5, noise_multiplier=1.0)), 24)
    check_budget(task(), 24)  # no privacy: nothing to check
