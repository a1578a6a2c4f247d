"""How many engine replicas a pool should run: the autoscaler's arithmetic, free of Ray.

Each scaling period the pool measures its load (a `PoolLoad`), turns it into the number of
replicas that load needs (`demand_from`), and moves its replica count a fraction `alpha` of the
way there (`desired_replicas`). `Scaler` bundles the two with a validated `ScalerConfig`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from llmasos.errors import InvalidRequestError

# Demand within this of a whole number counts as that number, and a step within this of a whole
# number of replicas counts as it: floating-point noise must not cost a replica.
_TOLERANCE = 1e-9


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidRequestError(name, f"must be an integer >= 0, not {value!r}")
    return value


def _check_bounds(alpha: float, low: int, high: int) -> None:
    if not 0 < alpha <= 1:
        raise InvalidRequestError("alpha", f"must be in (0, 1], not {alpha!r}")
    _check_count("low", low)
    _check_count("high", high)
    if low > high:
        raise InvalidRequestError("low", f"must be <= high ({high}), not {low}")


def desired_replicas(current: int, demand: float, alpha: float, low: int, high: int) -> int:
    """The replica count for the next period: R_opt = R + alpha * (R_demand - R), rounded and
    clamped.

    - R is `current`; R_demand is `demand` rounded up to a whole replica, ceil(demand), since
      8.3 replicas' worth of work needs 9 (a fractional target would make the count flip
      between 8 and 9 forever).
    - The step alpha * (R_demand - R) is rounded away from `current`, to a whole replica and
      at least one: ceil(R_opt) when growing, floor(R_opt) when shrinking. Any gap therefore
      closes within |R_demand - R| periods and a fractional step never stalls; since
      alpha <= 1 the count never overshoots R_demand. alpha = 1 jumps there at once.
    - The result is clamped to [low, high], so it lies in the bounds even if `current` did not.

    Arguments: current >= 0 and low <= high, all integers >= 0; demand a finite number >= 0;
    alpha in (0, 1]. low = 0 lets a pool scale to zero: then a queued request must still count
    as demand (as `demand_from` does) or the pool never starts again. Serving pools want
    low >= 1. A bad argument raises InvalidRequestError naming it and its limit.
    """
    _check_count("current", current)
    _check_bounds(alpha, low, high)
    if not (math.isfinite(demand) and demand >= 0):
        raise InvalidRequestError("demand", f"must be a finite number >= 0, not {demand!r}")
    gap = math.ceil(demand - _TOLERANCE) - current
    step = max(1, math.ceil(alpha * abs(gap) - _TOLERANCE)) if gap else 0
    moved = current + step if gap > 0 else current - step
    return min(max(moved, low), high)


@dataclass(frozen=True)
class PoolLoad:
    """What a pool measured over one scaling period."""

    replicas: int  # replicas that served the period's load
    running: int  # requests decoding or prefilling, over all replicas
    queued: int  # requests waiting for a slot (at the replicas and at the front)
    ttft_p50_s: float | None = None  # median time to first token; None if nothing started

    def __post_init__(self) -> None:
        _check_count("replicas", self.replicas)
        _check_count("running", self.running)
        _check_count("queued", self.queued)
        if self.ttft_p50_s is not None and not self.ttft_p50_s >= 0:
            raise InvalidRequestError("ttft_p50_s", f"must be >= 0, not {self.ttft_p50_s!r}")


@dataclass(frozen=True)
class ScaleTargets:
    """What one replica should carry (requests in flight, the median time to first token), and
    how far a missed TTFT target may raise demand in one period (a factor of the replicas)."""

    requests_per_replica: float = 8.0  # half the engine's 16 slots
    # Well above one prompt's prefill on the default CPU engine (512 tokens: 4.3 s), which more
    # replicas would not shorten.
    ttft_s: float = 10.0
    max_latency_factor: float = 2.0

    def __post_init__(self) -> None:
        for name in ("requests_per_replica", "ttft_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidRequestError(name, f"must be a finite number > 0, not {value!r}")
        factor = self.max_latency_factor
        if not (math.isfinite(factor) and factor >= 1):
            raise InvalidRequestError(
                "max_latency_factor", f"must be a finite number >= 1, not {factor!r}"
            )


def demand_from(load: PoolLoad, targets: ScaleTargets) -> float:
    """R_demand, the replicas the measured load needs: the larger of two estimates.

    - By queue: (running + queued) / targets.requests_per_replica, the replicas that keep every
      replica at its share of requests in flight.
    - By latency, only when ttft_p50_s is above targets.ttft_s: replicas * min(ttft_p50_s /
      targets.ttft_s, targets.max_latency_factor), the count raised in proportion to how far
      the median TTFT misses its target (long prompts can miss it with short queues), by at
      most max_latency_factor (2: at most double) a period. A TTFT measured in an overload
      still reflects the backlog after replicas were added, so an uncapped ratio overshoots.

    The larger wins rather than the product: a long queue already lengthens TTFT, and
    multiplying would count one overload twice. A TTFT at or below target never lowers demand.
    """
    by_queue = (load.running + load.queued) / targets.requests_per_replica
    ttft = load.ttft_p50_s
    if ttft is None or ttft <= targets.ttft_s:
        return by_queue
    factor = min(ttft / targets.ttft_s, targets.max_latency_factor)
    return max(by_queue, load.replicas * factor)


@dataclass(frozen=True)
class ScalerConfig:
    """The autoscaler's settings: targets per replica, the smoothing alpha and the bounds."""

    targets: ScaleTargets = field(default_factory=ScaleTargets)
    alpha: float = 0.5
    low: int = 1
    high: int = 8

    def __post_init__(self) -> None:
        _check_bounds(self.alpha, self.low, self.high)


class Scaler:
    """Decides each period's replica count from the measured load."""

    def __init__(self, config: ScalerConfig | None = None) -> None:
        self.config = config or ScalerConfig()

    def decide(self, current: int, load: PoolLoad) -> int:
        """The next replica count, given the count now (running or starting) and the load."""
        return self.step(current, demand_from(load, self.config.targets))

    def step(self, current: int, demand: float) -> int:
        """desired_replicas with this scaler's alpha and bounds."""
        config = self.config
        return desired_replicas(current, demand, config.alpha, config.low, config.high)

    def replay(self, demands: Iterable[float], start: int) -> list[int]:
        """The counts a pool starting at `start` replicas would run after each demand of a
        recorded trace, one period per demand, as if each decision took effect at once."""
        counts = []
        current = start
        for demand in demands:
            current = self.step(current, demand)
            counts.append(current)
        return counts
