"""The pool's control loop: every interval the replica count follows R_opt = R + alpha
(R_demand - R) (llmasos.cluster.scaler), and the pool heals.

- Up: new replicas start; Ray places each on a node with room, or keeps it pending until one
  has room (a node that comes back, or joins, gets it).
- Down: the least busy ready replicas drain (the router stops sending them work) and stop once
  their requests in flight are done, so scaling down loses nothing.
- Heal: a dead replica no longer counts, so the next decision starts a replacement.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from llmasos.cluster.front import Traffic
from llmasos.cluster.pool import Pool, ReplicaHandle, ReplicaState
from llmasos.cluster.scaler import PoolLoad, Scaler

logger = logging.getLogger(__name__)
READY_POLL_S = 30.0


@dataclass
class Decision:
    current: int
    desired: int
    load: PoolLoad


class Autoscaler:
    def __init__(self, pool: Pool, traffic: Traffic, scaler: Scaler, interval_s: float) -> None:
        self.pool = pool
        self.traffic = traffic
        self.scaler = scaler
        self.interval_s = interval_s
        self.last: Decision | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="llmasos-autoscale", daemon=True)

    def start_replicas(self, count: int) -> list[ReplicaHandle]:
        """Start `count` replicas, each watched until it is ready."""
        handles = [self.pool.start_replica() for _ in range(count)]
        for handle in handles:
            threading.Thread(target=self._await_ready, args=(handle,), daemon=True).start()
        return handles

    def _await_ready(self, handle: ReplicaHandle) -> None:
        while not self._stop.is_set() and handle.state is ReplicaState.STARTING:
            self.pool.wait_ready(handle, timeout=READY_POLL_S)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # one bad round (a node gone mid-call) must not end the loop
                logger.exception("autoscaler round failed")

    def tick(self) -> Decision:
        """One decision: scale to the formula's count and stop drained replicas."""
        for handle in self.pool.ready():
            self.pool.check(handle)  # a dead one stops counting
        self.pool.ensure_batch_leader()  # before draining: the leader is never drained
        active = [h for h in self.pool.replicas() if h.state is not ReplicaState.DRAINING]
        serving = len(self.pool.ready())  # starting ones count in `active`, not in the load
        load = PoolLoad(serving, self.traffic.total_in_flight(), 0, self.traffic.ttft_p50())
        desired = self.scaler.decide(len(active), load)
        if desired > len(active):
            self.start_replicas(desired - len(active))
        elif desired < len(active):
            self._drain(len(active) - desired)
        self._stop_drained()
        self.pool.ensure_batch_leader()  # and after: a replacement that started at once
        self.last = Decision(len(active), desired, load)
        return self.last

    def _drain(self, count: int) -> None:
        """Drain the `count` least busy replicas (starting ones first: they hold no work; never
        the batch leader, whose batches would start again elsewhere while it finishes them)."""
        in_flight = self.traffic.in_flight
        starting = [h for h in self.pool.replicas() if h.state is ReplicaState.STARTING]
        others = [h for h in self.pool.ready() if not h.leads_batches]
        ready = sorted(others, key=lambda h: (in_flight.get(h.replica, 0), -h.replica))
        for handle in (starting + ready)[:count]:
            logger.info("replica %d drains", handle.replica)
            self.pool.drain(handle)

    def _stop_drained(self) -> None:
        for handle in self.pool.replicas():
            if handle.state is ReplicaState.DRAINING and not self.traffic.in_flight.get(
                handle.replica
            ):
                self.pool.stop(handle)

    def close(self) -> None:
        self._stop.set()
