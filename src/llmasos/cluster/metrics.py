"""GET /metrics at the front: every ready replica's series, each with a `replica` label, and
the pool's own (replicas by state, requests in flight and served per replica, retries).
"""

from __future__ import annotations

from llmasos.cluster.front import Traffic
from llmasos.cluster.pool import PoolView, ReplicaState


def with_replica_label(line: str, replica: int) -> str:
    """A Prometheus sample line with `replica="k"` added to its labels."""
    label = f'replica="{replica}"'
    brace, space = line.find("{"), line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        return f"{line[: brace + 1]}{label},{line[brace + 1 :]}"
    return f"{line[:space]}{{{label}}}{line[space:]}"


def merged(replica_texts: dict[int, str]) -> list[str]:
    """The replicas' exposition texts as one: each HELP/TYPE once, every sample labelled."""
    comments: dict[str, str] = {}
    samples: dict[str, list[str]] = {}
    for replica, text in sorted(replica_texts.items()):
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3:
                    comments.setdefault(f"{parts[1]} {parts[2]}", line)
                continue
            family = _family(line.split("{", 1)[0].split(" ", 1)[0])
            samples.setdefault(family, []).append(with_replica_label(line, replica))
    lines = []
    for family, family_samples in samples.items():
        lines += [c for key, c in comments.items() if key.split(" ")[1] == family]
        lines += family_samples
    return lines


def _family(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def pool_lines(pool: PoolView, traffic: Traffic) -> list[str]:
    """The pool's own series."""
    replicas = pool.replicas()
    lines = [
        "# HELP llmasos_cluster_replicas Engine replicas by state.",
        "# TYPE llmasos_cluster_replicas gauge",
    ]
    for state in (ReplicaState.STARTING, ReplicaState.READY, ReplicaState.DRAINING):
        count = sum(h.state is state for h in replicas)
        lines.append(f'llmasos_cluster_replicas{{state="{state.value}"}} {count}')
    in_flight = {h.replica: traffic.in_flight.get(h.replica, 0) for h in replicas}
    lines += [
        "# HELP llmasos_cluster_in_flight Requests the front has at a replica now.",
        "# TYPE llmasos_cluster_in_flight gauge",
        *(f'llmasos_cluster_in_flight{{replica="{k}"}} {v}' for k, v in in_flight.items()),
        "# HELP llmasos_cluster_served_total Requests a replica answered through the front.",
        "# TYPE llmasos_cluster_served_total counter",
        *(f'llmasos_cluster_served_total{{replica="{k}"}} {v}' for k, v in traffic.served.items()),
        "# HELP llmasos_cluster_retries_total Requests run again because a replica went away.",
        "# TYPE llmasos_cluster_retries_total counter",
        f"llmasos_cluster_retries_total {traffic.retries}",
    ]  # fmt: skip
    return lines
