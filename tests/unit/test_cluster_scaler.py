import math
import random
import subprocess
import sys

import pytest

import llmasos.cluster
from llmasos.cluster import desired_replicas
from llmasos.cluster.scaler import PoolLoad, Scaler, ScalerConfig, ScaleTargets, demand_from
from llmasos.errors import InvalidRequestError


@pytest.mark.parametrize(
    ("current", "demand", "alpha", "expected"),
    [
        (4, 10, 0.5, 7),  # 4 + 0.5 * 6 = 7
        (4, 10, 0.2, 6),  # 4 + 1.2 = 5.2, ceil when growing
        (4, 10, 1.0, 10),  # alpha 1 jumps to the demand
        (10, 4, 0.5, 7),  # 10 - 3 = 7
        (10, 4, 0.2, 8),  # 10 - 1.2 = 8.8, floor when shrinking
        (4, 5, 0.1, 5),  # a step of 0.1 replica still moves one
        (5, 4, 0.1, 4),
        (5, 5, 0.3, 5),  # no gap, no move
        (8, 8.3, 0.2, 9),  # 8.3 replicas of work need 9
        (9, 8.3, 0.2, 9),  # ... and 9 stays, no flip back to 8
        (0, 0.1, 1.0, 1),
        (3, 0.1 * 3 * 10, 1.0, 3),  # 3.0000000000000004 is 3, not 4
    ],
)
def test_the_formula_rounds_away_from_current(current, demand, alpha, expected):
    assert desired_replicas(current, demand, alpha, 0, 64) == expected


@pytest.mark.parametrize(
    ("current", "demand", "low", "high", "expected"),
    [
        (4, 100, 1, 16, 16),
        (4, 0, 2, 16, 2),
        (20, 20, 1, 16, 16),  # a current above the bounds comes back within them
        (0, 0, 1, 4, 1),
        (3, 0, 0, 4, 0),  # low = 0 lets a pool scale to zero
    ],
)
def test_the_result_is_clamped_to_the_bounds(current, demand, low, high, expected):
    assert desired_replicas(current, demand, 1.0, low, high) == expected


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": math.nan}, "alpha"),
        ({"low": -1}, "low"),
        ({"low": 5, "high": 4}, "low"),
        ({"high": 2.5}, "high"),
        ({"current": -1}, "current"),
        ({"current": 2.0}, "current"),
        ({"current": True}, "current"),
        ({"demand": -0.5}, "demand"),
        ({"demand": math.nan}, "demand"),
        ({"demand": math.inf}, "demand"),
    ],
)
def test_bad_arguments_name_the_field(arguments, field):
    call = {"current": 2, "demand": 3.0, "alpha": 0.5, "low": 1, "high": 8} | arguments
    with pytest.raises(InvalidRequestError) as raised:
        desired_replicas(**call)
    assert raised.value.field == field


def test_a_recorded_trace_gives_the_formulas_counts():
    scaler = Scaler(ScalerConfig(alpha=0.5, low=1, high=20))
    demands = [10, 10, 10, 3, 3, 12.5, 0, 40]
    # 2+4, 6+2, 8+1, 9-3, 6-2 (1.5 up to 2), 4+5 (ceil 12.5 = 13), 9-5, 4+18 clamped to 20
    assert scaler.replay(demands, start=2) == [6, 8, 9, 6, 4, 9, 4, 20]


def plain_formula(current: int, demand: float, alpha: float, low: int, high: int) -> int:
    target = math.ceil(demand)
    optimum = current + alpha * (target - current)
    moved = math.ceil(optimum) if target > current else math.floor(optimum)
    return min(max(moved, low), high)


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75, 1.0])
def test_a_random_trace_follows_the_formula_step_by_step(alpha):
    rng = random.Random(15)
    demands = [rng.choice([0, 1, 7.5, 40]) * rng.random() for _ in range(300)]
    counts = Scaler(ScalerConfig(alpha=alpha, low=1, high=32)).replay(demands, start=1)
    current, expected = 1, []
    for demand in demands:
        current = plain_formula(current, demand, alpha, 1, 32)
        expected.append(current)
    assert counts == expected


@pytest.mark.parametrize("alpha", [0.05, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("start", [3, 60])
def test_a_constant_demand_is_reached_and_held(alpha, start):
    counts = Scaler(ScalerConfig(alpha=alpha, low=1, high=64)).replay([37.4] * 40, start)
    assert counts[-1] == 38
    reached = counts.index(38)
    assert reached < abs(38 - start)
    assert set(counts[reached:]) == {38}
    assert counts == sorted(counts, reverse=start > 38)  # monotone: no overshoot
    if alpha == 1.0:
        assert reached == 0


def test_demand_is_the_queue_estimate_while_ttft_meets_its_target():
    targets = ScaleTargets(requests_per_replica=8, ttft_s=2.0)
    assert demand_from(PoolLoad(4, 20, 12, None), targets) == 4.0
    assert demand_from(PoolLoad(4, 20, 12, 1.0), targets) == 4.0
    assert demand_from(PoolLoad(4, 20, 12, 2.0), targets) == 4.0


def test_a_ttft_above_target_raises_demand_in_proportion_up_to_a_cap():
    targets = ScaleTargets(requests_per_replica=8, ttft_s=2.0, max_latency_factor=4)
    assert demand_from(PoolLoad(4, 8, 0, 5.0), targets) == 10.0  # 4 * 5 / 2 beats 8 / 8
    assert demand_from(PoolLoad(4, 8, 0, 60.0), targets) == 16.0  # 4 * 30 capped at 4 * 4
    assert demand_from(PoolLoad(2, 40, 40, 3.0), targets) == 10.0  # 80 / 8 beats 2 * 1.5
    assert demand_from(PoolLoad(4, 8, 0, 5.0), ScaleTargets(8, 2.0)) == 8.0  # default cap 2


def test_a_pool_at_zero_starts_when_requests_queue():
    load = PoolLoad(0, 0, 3, None)
    assert demand_from(load, ScaleTargets()) == 3 / 8
    scaler = Scaler(ScalerConfig(alpha=0.2, low=0, high=4))
    assert scaler.decide(0, load) == 1
    assert scaler.decide(0, PoolLoad(0, 0, 0, None)) == 0


def test_decide_applies_the_formula_to_the_measured_demand():
    config = ScalerConfig(ScaleTargets(requests_per_replica=4, ttft_s=1.0), 0.5, 2, 10)
    load = PoolLoad(3, 12, 14, 0.5)  # 26 / 4 = 6.5 replicas
    assert Scaler(config).decide(3, load) == desired_replicas(3, 6.5, 0.5, 2, 10) == 5


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: PoolLoad(1, -1, 0), "running"),
        (lambda: PoolLoad(1, 0, -2), "queued"),
        (lambda: PoolLoad(-1, 0, 0), "replicas"),
        (lambda: PoolLoad(1, 0, 0, -0.1), "ttft_p50_s"),
        (lambda: ScaleTargets(requests_per_replica=0), "requests_per_replica"),
        (lambda: ScaleTargets(ttft_s=math.inf), "ttft_s"),
        (lambda: ScaleTargets(max_latency_factor=0.5), "max_latency_factor"),
        (lambda: ScalerConfig(alpha=0), "alpha"),
        (lambda: ScalerConfig(low=5, high=2), "low"),
    ],
)
def test_bad_settings_name_the_field(make, field):
    with pytest.raises(InvalidRequestError) as raised:
        make()
    assert raised.value.field == field


def test_the_package_exports_the_formula_and_imports_no_ray():
    assert llmasos.cluster.__all__ == ["desired_replicas"]
    probe = "import sys, llmasos.cluster; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
