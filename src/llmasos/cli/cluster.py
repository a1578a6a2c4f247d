"""`llmasos serve --cluster ...` (the front over a pool of replicas) and `llmasos cluster
nodes|replicas` (what GET /v1/cluster says, as tables)."""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import typer
from rich.table import Table

from llmasos.cli.common import ApiKey, Url, announce, console, fail
from llmasos.cli.tls import serve_http
from llmasos.errors import InvalidRequestError, LLMasOSError

if TYPE_CHECKING:
    from llmasos.server.launch import ServeConfig

cluster_app = typer.Typer(
    help="The Ray cluster behind `llmasos serve --cluster`.", no_args_is_help=True
)
ROUTERS = ("cache-aware", "round-robin")
ROLES = ("all", "front")
POOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class ClusterPlan:
    """What `llmasos serve --cluster` was asked for, beyond one server's flags."""

    address: str  # auto, ray://HOST:PORT or HOST:PORT
    scaling: tuple[int | None, int, int | None, float, float]  # replicas, low, high, alpha, s
    routing: str = "cache-aware"
    gpus_per_replica: float | None = None
    role: str = "all"  # all: the pool, its scaler and a front; front: a front for `pool`
    pool: str = "llmasos"


def serve_cluster(
    plan: ClusterPlan, config: ServeConfig, host: str, port: int, tls: tuple[Path, Path] | None
) -> None:
    """Join (or start) the Ray cluster; start the pool (or attach to one) and serve its front
    until stopped."""
    from llmasos.cluster.pool import connect

    try:
        if plan.role not in ROLES:
            raise InvalidRequestError("--role", f"one of {', '.join(ROLES)}, got {plan.role!r}")
        if not POOL_NAME.fullmatch(plan.pool):
            raise InvalidRequestError("--pool", f"1-64 letters, digits, - or _, got {plan.pool!r}")
        router = _router(plan.routing)
        scaling = _scaler(plan.scaling)  # checked before anything starts
        announce(f"joining the Ray cluster ({plan.address})...")
        connect(plan.address)
        if plan.role == "front":
            _serve_attached(plan, router, host, port, tls)
        else:
            _serve_pool(plan, router, scaling, config, (host, port, tls))
    except LLMasOSError as error:
        fail(str(error))


def _serve_pool(
    plan: ClusterPlan,
    router: Any,
    scaling: tuple[Any, int, float],
    config: ServeConfig,
    where: tuple[str, int, tuple[Path, Path] | None],
) -> None:
    """The pool, its scaler and its front, in this process."""
    from llmasos.cluster.autoscale import Autoscaler
    from llmasos.cluster.front import Front, Traffic
    from llmasos.cluster.pool import Pool, gpus_for_replicas

    scaler, initial, interval = scaling
    host, port, tls = where
    gpus = gpus_for_replicas(plan.gpus_per_replica)
    link = {
        "cluster_front": _front_url(host, port, tls),
        "cluster_token": secrets.token_urlsafe(32),
    }
    pool = Pool(dataclasses.replace(config, **link), name=plan.pool, gpus_per_replica=gpus)
    traffic = Traffic()
    autoscaler = Autoscaler(pool, traffic, scaler, interval)
    announce(f"starting {initial} replica(s) of {config.model or 'the default model'}...")
    for handle in autoscaler.start_replicas(initial):
        if not pool.wait_ready(handle):
            announce(f"replica {handle.replica}: not ready yet ({handle.error or 'pending'})")
    pool.ensure_batch_leader()
    _warn_of_split_storage(pool)
    autoscaler.start()
    announce(
        f"scaling {scaler.config.low}-{scaler.config.high} replicas, {gpus:g} GPU(s) a replica"
    )
    try:
        _run_front(Front(pool, router, traffic), autoscaler, plan, host, port, tls)
    finally:
        autoscaler.close()
        pool.close()


def _serve_attached(
    plan: ClusterPlan, router: Any, host: str, port: int, tls: tuple[Path, Path] | None
) -> None:
    """A front for the pool another process owns."""
    from llmasos.cluster.attach import AttachedPool
    from llmasos.cluster.front import Front, Traffic

    pool = AttachedPool(plan.pool)
    pool.start()
    announce(f"attached to pool {plan.pool}: its owner starts, drains and stops replicas")
    try:
        _run_front(Front(pool, router, Traffic()), None, plan, host, port, tls)
    finally:
        pool.close()


def _run_front(
    front: Any, autoscaler: Any, plan: ClusterPlan, host: str, port: int, tls: Any
) -> None:
    """Serve `front` (over its pool) until stopped."""
    from llmasos.cluster.front_app import create_front
    from llmasos.cluster.overview import describe

    pool, traffic = front.pool, front.traffic
    app = create_front(front, lambda: describe(pool, traffic, autoscaler, plan.routing))
    details = f"{len(pool.ready())} replica(s) of pool {plan.pool} ready, routing {plan.routing}"
    serve_http(app, host, port, tls, lambda url: f"LLMasOS cluster front on {url}: {details}")


def _warn_of_split_storage(pool: Any) -> None:
    """Replicas on several nodes without a shared storage service keep what the API stores
    (files, keys, batches, agent memory) on their own node: say so."""
    from llmasos.cluster.pool import shared_settings

    nodes = {h.info.node_id for h in pool.ready() if h.info is not None}
    if len(nodes) > 1 and "LLMASOS_DATABASE_URL" not in shared_settings():
        announce(
            "warning: replicas run on several nodes and each keeps its own storage (files, "
            "keys, batches, agent memory); set LLMASOS_DATABASE_URL to a PostgreSQL database "
            "they all share"
        )


def _front_url(host: str, port: int, tls: tuple[Path, Path] | None) -> str:
    """Where the replicas reach the front (their batch lines go there): the node's own address
    when the front listens on every interface."""
    import ray

    reachable = ray.util.get_node_ip_address() if host in ("0.0.0.0", "::", "") else host
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"{'https' if tls else 'http'}://{reachable}:{port}"


def _scaler(scaling: tuple[int | None, int, int | None, float, float]) -> tuple[Any, int, float]:
    from llmasos.cluster.scaler import Scaler, ScalerConfig

    replicas, low, high, alpha, interval = scaling
    initial = replicas if replicas is not None else low
    if initial < 1:
        raise InvalidRequestError("--replicas", f"at least 1, got {initial}")
    if interval <= 0:
        raise InvalidRequestError("--scale-interval", f"more than 0 seconds, got {interval}")
    config = ScalerConfig(
        alpha=alpha, low=low, high=high if high is not None else max(initial, low)
    )
    return Scaler(config), initial, interval


def _router(routing: str) -> Any:
    from llmasos.cluster.router import CacheAwareRouter, RoundRobinRouter

    if routing not in ROUTERS:
        raise InvalidRequestError("--routing", f"one of {', '.join(ROUTERS)}, got {routing!r}")
    return CacheAwareRouter() if routing == "cache-aware" else RoundRobinRouter()


def _cluster(url: str, api_key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        reply = httpx.get(f"{url.rstrip('/')}/v1/cluster", headers=headers, timeout=30)
    except httpx.HTTPError as error:
        fail(f"no LLMasOS cluster front answers at {url}: {error}")
    if reply.status_code == 404:
        fail(f"{url} is a single server, not a cluster front (llmasos serve --cluster auto)")
    if not reply.is_success:
        fail(f"{url}: {reply.status_code} {reply.text[:300]}")
    return reply.json()


@cluster_app.command()
def nodes(url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """The cluster's nodes, their devices and the replicas on each."""
    body = _cluster(url, api_key)
    on_node: dict[str, list[str]] = {}
    for replica in body["replicas"]:
        on_node.setdefault(replica["node_id"] or "", []).append(str(replica["replica"]))
    devices = {r["node_id"]: ", ".join(r.get("devices") or []) for r in body["replicas"]}
    table = Table("NODE", "ADDRESS", "ALIVE", "CPUS", "GPUS", "MEMORY", "REPLICAS", "DEVICES")
    for node in body["nodes"]:
        table.add_row(
            node["node_id"][:8], node["address"], "yes" if node["alive"] else "no",
            f"{node['cpus']:g}", f"{node['gpus']:g}", f"{node['memory_bytes'] / 2**30:.0f}G",
            ",".join(on_node.get(node["node_id"], [])) or "-",
            devices.get(node["node_id"]) or "-",
        )  # fmt: skip
    console.print(table)


@cluster_app.command()
def replicas(url: Url = "http://127.0.0.1:8000", api_key: ApiKey = None) -> None:
    """The engine replicas: state, node, load, tokens and prefix hits."""
    body = _cluster(url, api_key)
    table = Table(
        "REPLICA", "STATE", "NODE", "MODEL", "IN FLIGHT", "SERVED", "TOKENS", "PREFIX HITS"
    )
    for replica in body["replicas"]:
        stats = replica["stats"] or {}
        hits, misses = stats.get("prefix_hits", 0), stats.get("prefix_misses", 0)
        table.add_row(
            str(replica["replica"]), replica["state"], (replica["node_id"] or "-")[:8],
            replica["model"] or "-", str(replica["in_flight"]), str(replica["served"]),
            str(stats.get("generated_tokens", "-")),
            f"{hits}/{hits + misses}" if stats else "-",
        )  # fmt: skip
    console.print(table)
    scaler = body["scaler"]
    if scaler is None:  # a front attached to another's pool
        console.print(f"routing {body['routing']}; pool {body['pool']}, scaled by its owner")
        return
    console.print(
        f"routing {body['routing']}; scaler alpha {scaler['alpha']}, replicas "
        f"{scaler['low']}-{scaler['high']}, "
        f"last decision {scaler['current']} -> {scaler['desired']}"
    )
