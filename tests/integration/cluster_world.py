"""A real Ray cluster on this machine, run by test_cluster.py inside a network namespace of its
own (Ray binds the machine's external address otherwise): a head with no CPUs and two 1-CPU
worker nodes, `llmasos serve --cluster HEAD_ADDRESS` in front, and the requests of the tests.

    unshare --user --net --map-root-user sh -c "ip link set lo up && python -m
        tests.integration.cluster_world OUT.json PROMPTS.json"

What it saw goes to OUT.json; test_cluster.py asserts on it (and compares the texts with a
single server's). It also runs on its own, for a look at the cluster by hand.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

# Ray's files (sockets, the "current cluster" file) in a folder of this run's: a stale
# /tmp/ray/ray_current_cluster of a killed run would make Ray join a dead cluster.
os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: socket paths
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
import ray  # after RAY_TMPDIR
from ray.cluster_utils import Cluster

from llmasos import Client, TrainingTask
from llmasos.jobs.tasks import ENDED
from llmasos.models.default import DEFAULT_MODEL
from tests.integration.cluster_flags import (
    FLAGS,
    LLMASOS,
    completion,
    reports,
    run_batch,
    signal_through_front,
    spawned,
    stored_everywhere,
    streamed,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_front(address: str, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [LLMASOS, "serve", "--cluster", address, "--port",
               str(port), "--replicas", "2", "--min-replicas", "2", "--scale-interval", "2",
               *FLAGS, *extra]  # fmt: skip
    env = {**os.environ, "LLMASOS_DATABASE_URL": os.environ["CLUSTER_DATABASE_URL"]}
    front = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if front.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if httpx.get(f"{url}/health", timeout=2).json().get("replicas") == 2:
                return front, url
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    front.kill()
    raise RuntimeError("the front never had two replicas:\n" + log.read_text())


def stop_front(front: subprocess.Popen) -> None:
    front.terminate()
    try:
        front.wait(60)
    except subprocess.TimeoutExpired:
        front.kill()


def attached_front(
    address: str, owner_url: str, prompts: dict[str, Any], out: Path
) -> dict[str, Any]:
    """A second front, attached to the running pool: what it answered and saw."""
    front, url = start_front(address, out.with_suffix(".attached.log"), "--role", "front")
    try:
        listed = [httpx.get(u + "/v1/processes", timeout=60).json() for u in (url, owner_url)]
        return {
            "answers": run_all(url, prompts["spread"][:4]),
            "listed": [[p["pid"] for p in body["data"]] for body in listed],
            "view": cluster_view(url),
        }
    finally:
        stop_front(front)


def loaded_replica(url: str, settle_s: float) -> dict[str, Any]:
    """The replica with the most requests in flight, once `settle_s` has passed (some tokens
    streamed) and while it still has some."""
    time.sleep(settle_s)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busiest = max(cluster_view(url)["replicas"], key=lambda r: r["in_flight"])
        if busiest["in_flight"]:
            return busiest
        time.sleep(0.05)
    raise RuntimeError("no replica had requests in flight to lose")


class DyingReplica:
    """Named as one more replica of the pool, it dies when handed a partition of job data (a
    replica lost while a job's data is tokenised)."""

    def ready(self) -> bool:
        return True

    def tokenise(self, tokenizer: Any, records: list[Any], max_tokens: int) -> None:
        os._exit(1)


def partitioned_job(url: str, texts: list[str], folder: Path) -> dict[str, Any]:
    """A training job through the front while a dying "replica" is in the pool: how its data
    was split once tokenised. It is cancelled then (its training is test_jobs.py's)."""
    name = "llmasos.replica.99"
    dying = ray.remote(DyingReplica).options(name=name, num_cpus=0).remote()
    ray.get(dying.ready.remote(), timeout=120)  # up, and listed with the pool's replicas
    data = folder / "split.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    task = TrainingTask(model=DEFAULT_MODEL, data=str(data), output="split:lora")
    with Client(base_url=url) as client:
        task_id = client.submit_task(task)
        deadline = time.monotonic() + 600
        status = client.get_task_status(task_id)
        while status.data_cached is None and status.state not in ENDED:
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
            status = client.get_task_status(task_id)
        client.cancel_task(task_id)
    cache = Path(os.environ["LLMASOS_HOME"]) / "jobs" / "cache"
    return {
        "rows": [json.loads(entry.read_text()) for entry in cache.glob("*.json")],
        "split": status.data_split,
        "cached": status.data_cached,
        "samples": status.samples,
        "error": status.error,
        "dying_listed": name in ray.util.list_named_actors(),
    }


def cluster_view(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/cluster", timeout=60).json()


def run_all(url: str, prompts: list[str]) -> list[dict[str, Any]]:
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as workers:
        return list(workers.map(lambda p: completion(url, p), prompts))


def node_of(view: dict[str, Any], replica: int) -> str:
    return next(r["node_id"] for r in view["replicas"] if r["replica"] == replica)


def main(out: Path, prompts_file: Path) -> None:
    prompts = json.loads(prompts_file.read_text())
    seen: dict[str, Any] = {}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    front, url = start_front(cluster.address, out.with_suffix(".front.log"))
    try:
        view = cluster_view(url)
        seen["nodes"] = view["nodes"]
        seen["replica_nodes"] = {r["replica"]: r["node_id"] for r in view["replicas"]}
        seen["spread"] = run_all(url, prompts["spread"])
        seen["streamed"] = streamed(url, prompts["spread"][0])
        seen["metrics"] = httpx.get(f"{url}/metrics", timeout=60).text
        seen["signalled"] = signal_through_front(url, prompts["spread"][1])
        for command in ("nodes", "replicas"):
            shown = subprocess.run([LLMASOS, "cluster", command, "--url", url],
                                   capture_output=True, text=True, check=False)  # fmt: skip
            seen[f"cli_{command}"] = shown.stdout + shown.stderr
        seen["families"] = [completion(url, p) for p in prompts["families"]]
        seen["after_families"] = cluster_view(url)["replicas"]
        seen["batch"] = run_batch(url, prompts["batch"])  # split across both replicas
        seen["after_batch"] = cluster_view(url)["replicas"]
        seen["spawned"] = spawned(url, prompts["families"][0])  # where that prompt is cached
        seen["reports"] = reports(url, [r["url"] for r in seen["after_batch"]])
        seen["stored"] = stored_everywhere(url, [r["url"] for r in seen["after_batch"]])
        seen["attached"] = attached_front(cluster.address, url, prompts, out)
        cluster.connect(namespace="llmasos")  # the pool's namespace: a "replica" of ours
        seen["job"] = partitioned_job(url, prompts["job"], out.parent)
        # A node goes while requests run: each must still be answered once, elsewhere.
        with concurrent.futures.ThreadPoolExecutor(len(prompts["failover"])) as pool:
            futures = [pool.submit(completion, url, p) for p in prompts["failover"]]
            futures += [pool.submit(streamed, url, p) for p in prompts["failover"]]
            busiest = loaded_replica(url, prompts["failover_after_s"])
            victim = next(w for w in workers if w.node_id == busiest["node_id"])
            cluster.remove_node(victim, allow_graceful=False)
            seen["removed_replica"] = busiest["replica"]
            seen["failover"] = [f.result() for f in futures]
        seen["after_failover"] = cluster_view(url)
        cluster.add_node(num_cpus=1)  # capacity returns: the pool heals to two replicas
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            view = cluster_view(url)
            if "replicas" not in view:
                raise RuntimeError(f"GET /v1/cluster answered {view}")
            if sum(r["state"] == "ready" for r in view["replicas"]) == 2:
                break
            time.sleep(1)
        seen["healed"] = view
        seen["after_heal"] = run_all(url, prompts["spread"][:2])
        # A key's rate holds across the replicas: a second pool, 4 requests a minute.
        stop_front(front)
        front, url = start_front(cluster.address, out.with_suffix(".front2.log"),
                                 "--requests-per-minute", str(prompts["rate_limit"]),
                                 "--pool", "limited")  # fmt: skip
        seen["limited"] = run_all(url, prompts["limited"])
    finally:
        stop_front(front)
        ray.shutdown()  # this driver first: a cluster with a driver on its head stays up
        cluster.shutdown()
        shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
        out.write_text(json.dumps(seen))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
