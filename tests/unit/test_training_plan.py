"""Which samples each training step takes: fixed by the seed and the step number alone, so a job
resumed at step s takes exactly the batches it would have taken."""

from __future__ import annotations

from collections import Counter

from llmasos import DP, TrainingTask
from llmasos.jobs.trainer import Plan


def test_each_epoch_takes_every_sample_once_in_a_new_order():
    plan = Plan(10, TrainingTask(model="m", data="d", batch_size=4, epochs=3, seed=5))
    assert (plan.steps_per_epoch, plan.total_steps) == (3, 9)
    epochs = [[i for s in range(e * 3 + 1, e * 3 + 4) for i in plan.batch(s)] for e in range(3)]
    for taken in epochs:
        assert sorted(taken) == list(range(10))
    assert epochs[0] != epochs[1]
    assert [plan.epoch_of(s) for s in (1, 3, 4, 9)] == [1, 1, 2, 3]


def test_a_step_takes_the_same_batch_whenever_it_is_asked():
    task = TrainingTask(model="m", data="d", batch_size=4, epochs=2)
    first, again = Plan(10, task), Plan(10, task)
    assert [first.batch(s) for s in range(1, 7)] == [again.batch(s) for s in (1, 2, 3, 4, 5, 6)]
    assert first.batch(2) != Plan(10, TrainingTask(model="m", data="d", seed=1)).batch(2)


def test_private_training_samples_each_record_with_the_batch_rate():
    plan = Plan(20, TrainingTask(model="m", data="d", batch_size=5, privacy=DP(epsilon=8)))
    assert plan.sample_rate == 0.25
    assert plan.batch(3) == Plan(20, TrainingTask(model="m", data="d", batch_size=5,
                                                  privacy=DP(epsilon=8))).batch(3)  # fmt: skip
    counts = Counter(i for step in range(1, 401) for i in plan.batch(step))
    assert all(60 <= counts[i] <= 140 for i in range(20))  # about 100 = 400 x 0.25 each


def test_a_private_plan_takes_a_63_bit_secret_seed():
    task = TrainingTask(model="m", data="d", batch_size=5, privacy=DP(epsilon=8))
    secret = 2**63 - 1
    assert Plan(20, task, secret).batch(7) == Plan(20, task, secret).batch(7)
    assert [Plan(20, task, secret).batch(s) for s in range(1, 9)] != [
        Plan(20, task, 1).batch(s) for s in range(1, 9)
    ]
