"""Rate limits that hold across a cluster: one ledger of token buckets for the whole pool.

Each replica checks a key's request and token rates (server/rate_limits.py) as a single server
does, but keeps its buckets in the pool's RateLedger, a Ray actor on the front's node, so a key
gets its rate once, not once per replica. A report the front gathers from every replica (GET
/v1/processes, /v1/stats...) so costs one request on each. When the ledger does not answer, the
request is refused (503) rather than let past the limits.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from llmasos.errors import ClusterUnavailableError
from llmasos.server.rate_limits import Buckets

LEDGER_TIMEOUT_S = 5.0


class RateLedger:
    """The pool's buckets (the Ray actor)."""

    def __init__(self) -> None:
        self._buckets = Buckets()

    def take(self, kind: str, caller: str, amount: int, per_minute: int) -> int:
        return self._buckets.take(kind, caller, amount, per_minute)


def start_ledger(name: str) -> Any:
    """The ledger actor, on this (the owning front's) node: it lives and dies with the front."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(RateLedger).options(num_cpus=0, scheduling_strategy=here, name=name)
    return actor.remote()


class SharedBuckets:
    """A replica's handle on the pool's ledger (a BucketStore)."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger

    def take(self, kind: str, caller: str, amount: int, per_minute: int) -> int:
        try:
            call = self._ledger.take.remote(kind, caller, amount, per_minute)
            return int(ray.get(call, timeout=LEDGER_TIMEOUT_S))
        except (GetTimeoutError, RayActorError) as error:
            raise ClusterUnavailableError("rate ledger") from error
