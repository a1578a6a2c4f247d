"""The compute pool: a Ray cluster's nodes and the engine replicas placed on them.

`connect` joins a cluster (or starts a local one); `Pool` discovers the nodes and their devices
from Ray, starts replicas as actors (Ray places each where its CPUs and GPUs fit), watches them,
and stops them. It does not route: the front does, with the pool's view of which replicas are
ready.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError

from llmasos.cluster.replica import (
    Replica,
    ReplicaInfo,
    ReplicaStats,
    gpu_memory,
    shared_gpu_budget,
)
from llmasos.cluster.shared_limits import SharedBuckets, start_ledger
from llmasos.errors import InvalidRequestError
from llmasos.jobs.pool_address import PoolAddress
from llmasos.server.launch import ServeConfig

# What every replica must share wherever it runs: the storage service (files, keys, batches,
# agent memory: LLMasOS's PostgreSQL, or SQLite when all replicas share one machine's home),
# its master key, and the API keys given in the environment. A node's own environment may lack
# them: they travel with each replica (Ray's runtime_env; the Ray cluster is trusted as the
# front is, since anyone who can reach it can run code on its nodes).
SHARED_SETTINGS = (
    "LLMASOS_DATABASE_URL",
    "LLMASOS_STORAGE_SHARDS",
    "LLMASOS_STORAGE_QUOTA",
    "LLMASOS_MASTER_KEY",
    "LLMASOS_API_KEYS",
)
POOL_NAMESPACE = "llmasos"  # where a pool's named actors are: other fronts find them there
START_TIMEOUT_S = 300.0  # loading a model on a busy node
PING_TIMEOUT_S = 10.0
logger = logging.getLogger(__name__)


def connect(address: str) -> None:
    """Join the Ray cluster at `address`: auto (a local cluster, started here), ray://HOST:PORT
    (Ray Client) or HOST:PORT (a cluster's GCS address, from this cluster's machines)."""
    if ray.is_initialized():
        return
    if address == "auto":
        ray.init(include_dashboard=False, logging_level=logging.WARNING, namespace=POOL_NAMESPACE)
    elif address.startswith("ray://") or ":" in address:
        ray.init(address=address, logging_level=logging.WARNING, namespace=POOL_NAMESPACE)
    else:
        raise InvalidRequestError("--cluster", "auto, ray://HOST:PORT or HOST:PORT")


def pool_exists(name: str) -> bool:
    """Whether a pool of that name runs on the connected cluster (its ledger is there)."""
    try:
        ray.get_actor(ledger_name(name))
    except ValueError:
        return False
    return True


def replica_prefix(pool: str) -> str:
    """What the names of a pool's replica actors start with (their number follows)."""
    return f"{pool}.replica."


def replica_name(pool: str, number: int) -> str:
    return f"{replica_prefix(pool)}{number}"


def ledger_name(pool: str) -> str:
    return f"{pool}.ledger"


def shared_settings() -> dict[str, str]:
    """SHARED_SETTINGS as this process has them."""
    return {name: os.environ[name] for name in SHARED_SETTINGS if os.environ.get(name)}


def gpus_for_replicas(requested: float | None) -> float:
    """The GPUs each replica takes: `requested` (whole GPUs, or a fraction below 1 to share
    one), else 1 where the cluster has GPUs and 0 where it has none."""
    if requested is None:
        return 1.0 if ray.cluster_resources().get("GPU", 0.0) > 0 else 0.0
    if requested < 0 or (requested > 1 and not float(requested).is_integer()):
        raise InvalidRequestError(
            "--gpus-per-replica", f"0, a fraction below 1 or a whole number, got {requested}"
        )
    return float(requested)


class ReplicaState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"  # takes no new requests; stops once its in-flight ones are done
    DEAD = "dead"


@dataclass
class ReplicaHandle:
    replica: int
    actor: Any  # a Ray actor handle of Replica
    state: ReplicaState = ReplicaState.STARTING
    info: ReplicaInfo | None = None
    error: str | None = None
    leads_batches: bool = False  # the one replica whose batch runner runs

    @property
    def url(self) -> str:
        """Where its server answers ("" until it is ready)."""
        return self.info.url if self.info is not None else ""


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    address: str
    alive: bool
    cpus: float
    gpus: float
    memory_bytes: int
    resources: dict[str, float] = field(default_factory=dict)


class _RayReplica(Replica):
    """A Replica that learns its node and its share of a GPU from Ray (which also sets
    CUDA_VISIBLE_DEVICES to the GPUs it was given, the only ones its engine then sees)."""

    def __init__(self, replica: int, config: ServeConfig, ledger: Any, pool: str) -> None:
        context = ray.get_runtime_context()
        where = PoolAddress(context.gcs_address, POOL_NAMESPACE, replica_prefix(pool))
        os.environ.update(where.environment())  # its job workers tokenise across the pool
        share = context.get_assigned_resources().get("GPU", 0.0)
        config = shared_gpu_budget(config, share, gpu_memory())
        address = ray.util.get_node_ip_address()
        super().__init__(replica, config, context.get_node_id(), address, SharedBuckets(ledger))


class PoolView:
    """A pool's replicas as a front sees them: which are ready, and how to reach them."""

    def __init__(self, name: str) -> None:
        self.name = name  # its actors are named after it (replica_name, ledger_name)
        self._replicas: dict[int, ReplicaHandle] = {}
        self._lock = threading.Lock()

    def nodes(self) -> list[NodeInfo]:
        """Every node Ray knows, with its devices (CPUs, GPUs, memory)."""
        nodes = []
        for node in ray.nodes():
            resources = node.get("Resources", {})
            nodes.append(
                NodeInfo(
                    node_id=node["NodeID"],
                    address=node.get("NodeManagerAddress", ""),
                    alive=bool(node.get("Alive")),
                    cpus=resources.get("CPU", 0.0),
                    gpus=resources.get("GPU", 0.0),
                    memory_bytes=int(resources.get("memory", 0)),
                    resources=dict(resources),
                )
            )
        return nodes

    def replicas(self) -> list[ReplicaHandle]:
        with self._lock:
            return [h for h in self._replicas.values() if h.state is not ReplicaState.DEAD]

    def ready(self) -> list[ReplicaHandle]:
        return [h for h in self.replicas() if h.state is ReplicaState.READY]

    def get(self, replica: int) -> ReplicaHandle | None:
        with self._lock:
            return self._replicas.get(replica)

    def stats(self, handle: ReplicaHandle) -> ReplicaStats | None:
        try:
            return ray.get(handle.actor.stats.remote(), timeout=PING_TIMEOUT_S)
        except (GetTimeoutError, RayActorError):
            return None

    def check(self, handle: ReplicaHandle) -> bool:
        """Whether the replica still answers; a dead one is marked so."""
        try:
            return bool(ray.get(handle.actor.ping.remote(), timeout=PING_TIMEOUT_S))
        except RayActorError as error:
            self._mark_dead(handle, f"died: {error}")
            return False
        except GetTimeoutError:
            return False

    def mark_unreachable(self, handle: ReplicaHandle, error: str) -> None:
        """The front could not reach it: dead unless it still answers Ray."""
        if not self.check(handle):
            self._mark_dead(handle, error)

    def _mark_dead(self, handle: ReplicaHandle, error: str) -> None:
        with self._lock:
            if handle.state is not ReplicaState.DEAD:
                logger.warning("replica %d %s", handle.replica, error)
                handle.state, handle.error = ReplicaState.DEAD, error

    def close(self) -> None:
        """Let go of the pool (an owner stops its replicas)."""


class Pool(PoolView):
    """Engine replicas of one server config on the connected Ray cluster, started, drained
    and stopped by this process (their owner: they go when it goes)."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        name: str = "llmasos",
        cpus_per_replica: float = 1.0,
        gpus_per_replica: float = 0.0,
    ) -> None:
        super().__init__(name)
        if pool_exists(name):
            raise InvalidRequestError(
                "--pool", f"a pool named {name!r} already runs on this Ray cluster: attach a "
                "front to it with --role front, or give this one another name"
            )  # fmt: skip
        self.config = config
        self.cpus_per_replica = cpus_per_replica
        self.gpus_per_replica = gpus_per_replica  # Ray places a replica where they are free
        self._numbers = itertools.count(1)
        self._actor_class = ray.remote(_RayReplica)
        self._ledger = start_ledger(ledger_name(name))  # one rate ledger for every replica

    def start_replica(self) -> ReplicaHandle:
        """Start one replica; it turns READY once its model is loaded (see `wait_ready`)."""
        number = next(self._numbers)
        shared = shared_settings()
        actor = self._actor_class.options(
            num_cpus=self.cpus_per_replica,
            num_gpus=self.gpus_per_replica,
            max_restarts=0,
            max_concurrency=4,
            name=replica_name(self.name, number),
            runtime_env={"env_vars": shared} if shared else None,
        ).remote(number, self.config, self._ledger, self.name)
        handle = ReplicaHandle(number, actor)
        with self._lock:
            self._replicas[number] = handle
        return handle

    def wait_ready(self, handle: ReplicaHandle, timeout: float = START_TIMEOUT_S) -> bool:
        """Wait for a starting replica; whether it is ready (else it stays starting or died)."""
        try:
            handle.info = ray.get(handle.actor.describe.remote(), timeout=timeout)
        except GetTimeoutError:
            return False  # no node has room yet: Ray places it when one does
        except RayActorError as error:
            self._mark_dead(handle, f"did not start: {error}")
            return False
        with self._lock:
            if handle.state is ReplicaState.STARTING:
                handle.state = ReplicaState.READY
        return handle.state is ReplicaState.READY

    def ensure_batch_leader(self) -> None:
        """Exactly one ready replica runs batches: when none does (at start, or the leader
        died), the lowest-numbered ready one starts; it resumes batches where they were."""
        ready = self.ready()
        if not ready or any(h.leads_batches for h in self.replicas()):
            return
        leader = min(ready, key=lambda h: h.replica)
        try:
            ray.get(leader.actor.lead_batches.remote(), timeout=PING_TIMEOUT_S)
        except (GetTimeoutError, RayActorError):
            return  # the next round tries again
        leader.leads_batches = True

    def drain(self, handle: ReplicaHandle) -> None:
        """The router stops sending it work (here, and in the fronts attached to the pool)."""
        with self._lock:
            if handle.state is not ReplicaState.DEAD:
                handle.state = ReplicaState.DRAINING
        handle.actor.drain.remote()

    def stop(self, handle: ReplicaHandle) -> None:
        """Stop a replica (drained first by the caller) and free its CPUs."""
        with contextlib.suppress(GetTimeoutError, RayActorError):  # gone, or stuck: killed below
            ray.get(handle.actor.stop.remote(), timeout=60)
        ray.kill(handle.actor, no_restart=True)
        self._mark_dead(handle, "stopped")

    def _mark_dead(self, handle: ReplicaHandle, error: str) -> None:
        """A replica given up for dead is killed too: one that only stopped answering must
        not hold its devices, nor go on leading batches beside its successor."""
        super()._mark_dead(handle, error)
        with contextlib.suppress(Exception):  # already gone
            ray.kill(handle.actor, no_restart=True)

    def close(self) -> None:
        for handle in self.replicas():
            self.stop(handle)
        ray.kill(self._ledger, no_restart=True)
