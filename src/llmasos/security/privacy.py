"""Differentially private release of counters: the Laplace mechanism, one draw per window.

A release adds Laplace(sensitivity / epsilon_each) noise to each query, where the epsilon of
the release is split evenly over its queries (basic composition), rounds, and clamps at zero
(post-processing, which costs no privacy). The noisy values are kept for `window_s`: asking
again within a window gives the same answer and spends nothing more, so averaging many calls
does not wear the noise away. Releases in different windows compose: T windows cost T times
epsilon, which is why a window is long.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmasos.errors import InvalidRequestError

_RANDOM = secrets.SystemRandom()


def laplace(scale: float, uniform: Callable[[], float] = _RANDOM.random) -> float:
    """One draw from Laplace(0, scale), by inverting its distribution function."""
    u = uniform() - 0.5
    while u == -0.5:  # log(0) is undefined; redraw
        u = uniform() - 0.5
    return -scale * math.copysign(1.0, u) * math.log(1.0 - 2.0 * abs(u))


@dataclass(frozen=True)
class Query:
    """A group of released values and its L1 sensitivity: how much all of them together can
    change when one process is added or removed."""

    fields: tuple[str, ...]
    sensitivity: float


class PrivateRelease:
    """Counters released with epsilon-differential privacy per window, per key."""

    def __init__(self, epsilon: float = 1.0, window_s: float = 60.0) -> None:
        if not 0 < epsilon <= 10:
            raise InvalidRequestError("epsilon", "must be above 0 and at most 10")
        self.epsilon = epsilon
        self.window_s = window_s
        self._released: dict[str, tuple[int, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def release(self, key: str, values: dict[str, int], queries: list[Query]) -> dict[str, int]:
        """Noisy copies of `values` for the fields the queries name (the same ones all window)."""
        window = int(time.time() // self.window_s)
        with self._lock:  # one draw per window, even for requests that arrive together
            kept = self._released.get(key)
            if kept is None or kept[0] != window:
                each = self.epsilon / len(queries)
                noisy = {
                    name: max(0, round(values[name] + laplace(query.sensitivity / each)))
                    for query in queries
                    for name in query.fields
                }
                kept = self._released[key] = (window, noisy)
            return dict(kept[1])
