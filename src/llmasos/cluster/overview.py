"""GET /v1/cluster: the nodes, their devices, the replicas on them, their load and the
scaler's last decision."""

from __future__ import annotations

import dataclasses
from typing import Any

from llmasos.cluster.autoscale import Autoscaler
from llmasos.cluster.front import Traffic
from llmasos.cluster.pool import PoolView
from llmasos.cluster.replica import PID_RANGE


def describe(
    pool: PoolView, traffic: Traffic, autoscaler: Autoscaler | None, routing: str
) -> dict[str, Any]:
    """The cluster as JSON (blocking: it asks every replica for its counters). A front
    attached to another's pool has no scaler (null) and counts only its own traffic."""
    replicas = []
    for handle in pool.replicas():
        stats = pool.stats(handle) if handle.info is not None else None
        replicas.append(
            {
                "replica": handle.replica,
                "state": handle.state.value,
                "node_id": handle.info.node_id if handle.info else None,
                "url": handle.info.url if handle.info else None,
                "model": handle.info.model if handle.info else None,
                "devices": list(handle.info.devices) if handle.info else [],
                "pids_from": handle.replica * PID_RANGE + 1,
                "in_flight": traffic.in_flight.get(handle.replica, 0),
                "served": traffic.served.get(handle.replica, 0),
                "stats": dataclasses.asdict(stats) if stats else None,
            }
        )
    return {
        "object": "cluster",
        "pool": pool.name,
        "routing": routing,
        "nodes": [dataclasses.asdict(node) for node in pool.nodes()],
        "replicas": replicas,
        "retries": traffic.retries,
        "scaler": _scaler(autoscaler) if autoscaler is not None else None,
    }


def _scaler(autoscaler: Autoscaler) -> dict[str, Any]:
    last, config = autoscaler.last, autoscaler.scaler.config
    return {
        "alpha": config.alpha,
        "low": config.low,
        "high": config.high,
        "interval_s": autoscaler.interval_s,
        "current": last.current if last else None,
        "desired": last.desired if last else None,
    }
