"""An engine replica: a whole LLMasOS server (kernel over its own engine, the same process API)
inside a Ray actor on its node.

The pool makes it an actor (`ray.remote(num_cpus=...)(Replica)`); the class itself knows
nothing of Ray but the node it runs on, so it is the same server `llmasos serve` runs. Its pids
are its own range (replica k: k * PID_RANGE + 1 on), so a pid names one process across the
cluster and tells the front which replica holds it.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from llmasos.engine.devices import DeviceKind, discover_devices
from llmasos.jobs.task_data import Record
from llmasos.jobs.token_cache import Sample, to_sample
from llmasos.runtime.factory import GPU_BUDGET_SHARE
from llmasos.server.launch import ServeConfig, build_app, build_models
from llmasos.server.rate_limits import BucketStore

PID_RANGE = 10**9  # pids of replica k: k * PID_RANGE + 1 .. (k + 1) * PID_RANGE
START_TIMEOUT_S = 60.0


def replica_of_pid(pid: int) -> int:
    return pid // PID_RANGE


def gpu_memory() -> list[int]:
    """The memory of each GPU this process sees (ggml's device registry), in bytes."""
    return [d.total_bytes for d in discover_devices() if d.kind is DeviceKind.GPU]


def shared_gpu_budget(config: ServeConfig, share: float, gpu_bytes: list[int]) -> ServeConfig:
    """A replica given `share` (below 1) of a GPU holds at most that share of the usual budget
    of the GPU's memory, so that the replicas sharing it fit; --memory-budget still rules."""
    if not 0 < share < 1 or config.memory_budget is not None or not gpu_bytes:
        return config
    budget = int(min(gpu_bytes) * GPU_BUDGET_SHARE * share)
    return dataclasses.replace(config, memory_budget=str(budget))


@dataclass(frozen=True)
class ReplicaInfo:
    replica: int
    url: str
    node_id: str
    node_address: str
    model: str
    devices: tuple[str, ...] = ()  # its node's devices as ggml reports them ("CPU 24G")


@dataclass
class ReplicaStats:
    """A replica's load and counters (summed over its loaded models)."""

    replica: int
    processes: dict[str, int] = field(default_factory=dict)  # state -> count
    generated_tokens: int = 0
    prompt_tokens: int = 0
    prefix_hits: int = 0
    prefix_misses: int = 0
    prefix_tokens_reused: int = 0
    kv_pages_used: int = 0
    kv_pages_total: int = 0


class Replica:
    """One server on this node, started at construction (the model loaded, the port open)."""

    def __init__(
        self,
        replica: int,
        config: ServeConfig,
        node_id: str,
        address: str,
        rate_buckets: BucketStore | None = None,
    ) -> None:
        self.replica = replica
        self.draining = False
        config = dataclasses.replace(config, first_pid=replica * PID_RANGE + 1)
        self.models = build_models(config)
        self.models.load(pin=True)
        app = self._app = build_app(self.models, config, rate_buckets)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, 0))  # the node's own address, a port of the OS's choosing
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"replica {replica}: its server did not start")
            time.sleep(0.02)
        port = listener.getsockname()[1]
        model = self.models.default_model
        devices = tuple(
            f"{d.name if d.name == d.kind.name else f'{d.kind.name} {d.name}'} "
            f"{d.total_bytes / 2**30:.0f}G"
            for d in discover_devices()
        )
        url = f"http://{address}:{port}"
        self.info = ReplicaInfo(replica, url, node_id, address, model, devices)

    def describe(self) -> ReplicaInfo:
        return self.info

    def stats(self) -> ReplicaStats:
        """The replica's load and counters over its loaded models."""
        stats = ReplicaStats(self.replica)
        for kernel in self.models.kernels().values():
            status = kernel.status()
            memory = kernel.memory_report()
            for state, count in status.processes.items():
                stats.processes[state] = stats.processes.get(state, 0) + count
            stats.generated_tokens += status.generated_tokens
            stats.prompt_tokens += status.prompt_tokens
            stats.prefix_hits += memory.prefix_hits
            stats.prefix_misses += memory.prefix_misses
            stats.prefix_tokens_reused += memory.prefix_tokens_reused
            stats.kv_pages_used += memory.used_pages
            stats.kv_pages_total += memory.total_pages
        return stats

    def tokenise(self, tokenizer: Any, records: list[Record], max_tokens: int) -> list[Sample]:
        """A partition of a training job's data, tokenised here (jobs/partitions.py)."""
        return [to_sample(record, tokenizer, max_tokens) for record in records]

    def lead_batches(self) -> None:
        """Make this replica the one that runs batches (its lines go through the front)."""
        self._app.state.batch_runner.lead()

    def ping(self) -> bool:
        return self._thread.is_alive()

    def drain(self) -> None:
        """Its pool drains it: every front stops sending it work."""
        self.draining = True

    def is_draining(self) -> bool:
        return self.draining

    def stop(self) -> None:
        """Stop serving (the app's shutdown unloads the models)."""
        self._server.should_exit = True
        self._thread.join(timeout=30)
