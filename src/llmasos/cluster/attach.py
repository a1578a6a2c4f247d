"""A front of its own: `llmasos serve --cluster ADDRESS --role front` routes to the replicas of
a pool that another `llmasos serve --cluster` process owns (found by their Ray names), so that
fronts can be added, restarted or replaced without touching the engines.

An attached front starts, drains and stops nothing: every REFRESH_S it takes up the pool's new
replicas, drops the ones that went, and stops sending work to the ones their owner drains. Its
own traffic does not reach the owner's scaler, which sees only its own front's requests.
"""

from __future__ import annotations

import logging
import threading

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from llmasos.cluster.pool import (
    PING_TIMEOUT_S,
    PoolView,
    ReplicaHandle,
    ReplicaState,
    pool_exists,
    replica_prefix,
)
from llmasos.errors import InvalidRequestError

REFRESH_S = 2.0
logger = logging.getLogger(__name__)


class AttachedPool(PoolView):
    """The replicas of the pool named `name`, as this front last saw them."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        if not pool_exists(name):
            raise InvalidRequestError(
                "--pool", f"no pool named {name!r} runs on this Ray cluster (start one with "
                "llmasos serve --cluster ... without --role front)"
            )  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="llmasos-attach", daemon=True)

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def refresh(self) -> None:
        """Take up new replicas, drop gone ones, follow the owner's drains."""
        prefix = replica_prefix(self.name)
        named = {
            int(n.removeprefix(prefix)): n
            for n in ray.util.list_named_actors()
            if n.startswith(prefix) and n.removeprefix(prefix).isdigit()
        }
        for number, name in named.items():
            known = self.get(number)
            if known is None or known.state is ReplicaState.DEAD:  # new, or back after a fault
                self._take_up(number, name)
        for handle in self.replicas():
            if handle.replica not in named:
                self._mark_dead(handle, "left the pool")
            else:
                self._follow(handle)

    def _take_up(self, number: int, name: str) -> None:
        try:
            actor = ray.get_actor(name)
            info = ray.get(actor.describe.remote(), timeout=PING_TIMEOUT_S)
        except (ValueError, GetTimeoutError, RayActorError):
            return  # still starting, or gone meanwhile: the next refresh sees
        with self._lock:
            self._replicas[number] = ReplicaHandle(number, actor, ReplicaState.READY, info)

    def _follow(self, handle: ReplicaHandle) -> None:
        try:
            draining = ray.get(handle.actor.is_draining.remote(), timeout=PING_TIMEOUT_S)
        except RayActorError as error:
            self._mark_dead(handle, f"died: {error}")
            return
        except GetTimeoutError:
            return
        with self._lock:
            if handle.state is not ReplicaState.DEAD:
                handle.state = ReplicaState.DRAINING if draining else ReplicaState.READY

    def _watch(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self.refresh()
            except Exception:  # one bad round (the GCS busy) must not end the watch
                logger.exception("refreshing pool %s failed", self.name)

    def close(self) -> None:
        self._stop.set()
