"""The pool's control loop, over a pool of plain objects (the Ray pool is test_cluster.py's):
it scales to the formula's count, a replica drains before it stops (scaling down loses no
request in flight), and a dead replica is replaced."""

from __future__ import annotations

from llmasos.cluster.autoscale import Autoscaler
from llmasos.cluster.front import Traffic
from llmasos.cluster.pool import ReplicaHandle, ReplicaState
from llmasos.cluster.scaler import Scaler, ScalerConfig, ScaleTargets, desired_replicas


class Pool:
    """Replicas that start ready at once; stops and drains are recorded."""

    def __init__(self) -> None:
        self.handles: list[ReplicaHandle] = []
        self.stopped: list[int] = []

    def start_replica(self) -> ReplicaHandle:
        handle = ReplicaHandle(len(self.handles) + 1, actor=None, state=ReplicaState.READY)
        self.handles.append(handle)
        return handle

    def wait_ready(self, handle: ReplicaHandle, timeout: float = 0) -> bool:
        return handle.state is ReplicaState.READY

    def replicas(self) -> list[ReplicaHandle]:
        return [h for h in self.handles if h.state is not ReplicaState.DEAD]

    def ready(self) -> list[ReplicaHandle]:
        return [h for h in self.handles if h.state is ReplicaState.READY]

    def check(self, handle: ReplicaHandle) -> bool:
        return handle.state is not ReplicaState.DEAD

    def drain(self, handle: ReplicaHandle) -> None:
        handle.state = ReplicaState.DRAINING

    def ensure_batch_leader(self) -> None:
        if not any(h.leads_batches for h in self.replicas()) and self.ready():
            min(self.ready(), key=lambda h: h.replica).leads_batches = True

    def stop(self, handle: ReplicaHandle) -> None:
        self.stopped.append(handle.replica)
        handle.state = ReplicaState.DEAD


def scaler(low: int = 1, high: int = 6, alpha: float = 0.5) -> Scaler:
    targets = ScaleTargets(requests_per_replica=2, ttft_s=100)
    return Scaler(ScalerConfig(targets=targets, alpha=alpha, low=low, high=high))


def test_the_count_follows_the_formula_and_a_draining_replica_stops_only_when_idle():
    pool, traffic = Pool(), Traffic()
    loop = Autoscaler(pool, traffic, scaler(), interval_s=1)  # type: ignore[arg-type]
    loop.start_replicas(1)
    for _ in range(8):  # 8 requests in flight: demand 4 replicas
        traffic.begin(1)
    counts = [loop.tick().desired for _ in range(3)]
    assert counts == [desired_replicas(1, 4, 0.5, 1, 6), 4, 4] == [3, 4, 4]
    assert len(pool.ready()) == 4
    for _ in range(8):  # the load is gone but for one request on replica 1
        traffic.end(1)
    traffic.begin(1)
    decision = loop.tick()
    assert (decision.current, decision.desired) == (4, 2)  # half the way to 1, rounded away
    assert sorted(pool.stopped) == [3, 4]  # the idle ones drained and stopped at once
    assert [h.replica for h in pool.ready()] == [1, 2]  # the busy replica keeps serving


def test_a_busy_replica_asked_to_drain_stops_after_its_last_request():
    pool, traffic = Pool(), Traffic()
    loop = Autoscaler(pool, traffic, scaler(low=1, alpha=1.0), interval_s=1)  # type: ignore[arg-type]
    loop.start_replicas(2)
    traffic.begin(1)
    traffic.begin(2)
    loop.tick()  # demand 1: one of the two drains, but both hold a request
    (draining,) = [h for h in pool.replicas() if h.state is ReplicaState.DRAINING]
    assert pool.stopped == []
    traffic.end(draining.replica)
    loop.tick()
    assert pool.stopped == [draining.replica]


def test_a_dead_replica_is_replaced():
    pool, traffic = Pool(), Traffic()
    loop = Autoscaler(pool, traffic, scaler(low=2), interval_s=1)  # type: ignore[arg-type]
    loop.start_replicas(2)
    pool.handles[0].state = ReplicaState.DEAD  # its node went
    decision = loop.tick()
    assert (decision.current, decision.desired) == (1, 2)
    assert [h.replica for h in pool.ready()] == [2, 3]


def test_the_batch_leader_is_never_drained_and_a_new_one_leads_when_it_dies():
    pool, traffic = Pool(), Traffic()
    loop = Autoscaler(pool, traffic, scaler(low=1, alpha=1.0), interval_s=1)  # type: ignore[arg-type]
    loop.start_replicas(2)
    loop.tick()  # no load: one replica goes, and one leads batches
    leader = next(h for h in pool.handles if h.leads_batches)
    assert leader.replica == 1 and pool.stopped == [2]  # the idle leader stays
    leader.state = ReplicaState.DEAD
    loop.tick()  # a replacement starts and leads
    assert [h.replica for h in pool.ready() if h.leads_batches] == [3]
