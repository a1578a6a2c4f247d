"""Loaded models: each with its own engine and kernel, all within a memory budget.

The manager is the program loader. A model is loaded from the repository when first asked for,
placed on a device by the fit policy, and kept while it is used. Idle models (no live process)
are unloaded when their keep-alive runs out, or, least recently used first, when a new model
needs their room. A model with live processes is never unloaded under them. All kernels draw
pids from one counter, so a pid names one process whichever model runs it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmasos.engine.base import Engine
from llmasos.errors import (
    MemoryBudgetError,
    ModelBusyError,
    NoSuchProcessError,
    UnknownModelError,
)
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import Process
from llmasos.models.default import DEFAULT_MODEL, canonical_model_name, ensure_default_model
from llmasos.models.placement import Device, FitPolicy, place
from llmasos.models.repository import Manifest, Repository

MIB = 1 << 20
DEFAULT_KEEP_ALIVE_S = 300.0

EngineLoader = Callable[[Path, str, Device], Engine]


@dataclass
class LoadedModel:
    name: str
    kernel: Kernel
    device: str
    memory_bytes: int
    keep_alive_s: float | None  # None: never unloaded for idleness
    loaded_at: float
    last_used: float


@dataclass(frozen=True)
class LoadedModelInfo:
    """A row of `llmasos models ps`."""

    name: str
    device: str
    memory_bytes: int
    live_processes: int
    idle_s: float
    keep_alive_s: float | None


class ModelManager:
    def __init__(
        self,
        repository: Repository | None,
        *,
        kernel_config: KernelConfig,
        load_engine: EngineLoader,
        kv_bytes_for: Callable[[Manifest], int],
        devices: list[Device],
        placement: FitPolicy = FitPolicy.FIRST_FIT,
        keep_alive_s: float | None = DEFAULT_KEEP_ALIVE_S,
        default_model: str = DEFAULT_MODEL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repository = repository
        self.kernel_config = kernel_config
        self.devices = devices
        self.placement = placement
        self.keep_alive_s = keep_alive_s
        self.default_model = canonical_model_name(default_model)
        self._load_engine = load_engine
        self._kv_bytes_for = kv_bytes_for
        self._clock = clock
        self._pids = itertools.count(1)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.RLock()

    # -- loading ---------------------------------------------------------------------------

    def kernel(self, name: str | None = None) -> Kernel:
        """The kernel serving `name` (the default model if None), loading it if needed."""
        return self.load(name).kernel

    def load(self, name: str | None = None) -> LoadedModel:
        canonical = canonical_model_name(name or self.default_model)
        with self._lock:
            loaded = self._loaded.get(canonical)
            if loaded is None:
                loaded = self._load(canonical)
            loaded.last_used = self._clock()
            return loaded

    def add(
        self,
        name: str,
        kernel: Kernel,
        *,
        device: str = "cpu",
        memory_bytes: int = 0,
        keep_alive_s: float | None = None,
    ) -> LoadedModel:
        """Register a kernel built elsewhere (the model `serve` starts with, a test's fake)."""
        now = self._clock()
        name = canonical_model_name(name)
        loaded = LoadedModel(name, kernel, device, memory_bytes, keep_alive_s, now, now)
        with self._lock:
            self._loaded[name] = loaded
        return loaded

    def _load(self, name: str) -> LoadedModel:
        manifest = self._manifest(name)
        need = manifest.size_bytes + self._kv_bytes_for(manifest)
        device = self._make_room(name, need)
        engine = self._load_engine(self.repository.blob_path(manifest), name, device)  # type: ignore[union-attr]
        kernel = Kernel(engine, self.kernel_config, pids=self._pids)
        now = self._clock()
        loaded = LoadedModel(name, kernel, device.name, need, self.keep_alive_s, now, now)
        self._loaded[name] = loaded
        return loaded

    def _manifest(self, name: str) -> Manifest:
        if self.repository is None:
            raise UnknownModelError(name, sorted(self._loaded))
        if name == DEFAULT_MODEL:
            ensure_default_model(self.repository)
        return self.repository.show(name)

    def _make_room(self, name: str, need: int) -> Device:
        """A device with `need` bytes free, unloading idle models least recently used first."""
        while (device := place(need, self.devices, self._used_bytes(), self.placement)) is None:
            idle = [m for m in self._loaded.values() if m.kernel.num_live_processes == 0]
            if not idle:
                free = {
                    d.name: (d.capacity_bytes - self._used_bytes().get(d.name, 0)) // MIB
                    for d in self.devices
                }
                raise MemoryBudgetError(
                    f"model: {name} needs {need // MIB} MiB; free MiB per device: {free}, and "
                    "every loaded model has live processes; wait, or raise --memory-budget"
                )
            self._unload(min(idle, key=lambda m: m.last_used))
        return device

    def _used_bytes(self) -> dict[str, int]:
        used: dict[str, int] = {}
        for model in self._loaded.values():
            used[model.device] = used.get(model.device, 0) + model.memory_bytes
        return used

    # -- unloading -------------------------------------------------------------------------

    def unload(self, name: str) -> None:
        canonical = canonical_model_name(name)
        with self._lock:
            loaded = self._loaded.get(canonical)
            if loaded is None:
                raise UnknownModelError(f"{name} (not loaded)", sorted(self._loaded))
            live = loaded.kernel.num_live_processes
            if live:
                raise ModelBusyError(canonical, live)
            self._unload(loaded)

    def reap_idle(self) -> list[str]:
        """Unload the models idle for longer than their keep-alive; return their names."""
        now = self._clock()
        with self._lock:
            expired = [
                m
                for m in self._loaded.values()
                if m.keep_alive_s is not None
                and m.kernel.num_live_processes == 0
                and now - m.last_used > m.keep_alive_s
            ]
            for model in expired:
                self._unload(model)
        return [m.name for m in expired]

    def _unload(self, model: LoadedModel) -> None:
        del self._loaded[model.name]
        model.kernel.close()

    def close(self) -> None:
        with self._lock:
            for model in list(self._loaded.values()):
                self._unload(model)

    # -- looking up ------------------------------------------------------------------------

    def loaded(self) -> list[LoadedModelInfo]:
        now = self._clock()
        with self._lock:
            return [
                LoadedModelInfo(
                    m.name,
                    m.device,
                    m.memory_bytes,
                    m.kernel.num_live_processes,
                    round(now - m.last_used, 3),
                    m.keep_alive_s,
                )
                for m in self._loaded.values()
            ]

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return canonical_model_name(name) in self._loaded

    def kernels(self) -> list[Kernel]:
        with self._lock:
            return [m.kernel for m in self._loaded.values()]

    def processes(self) -> list[Process]:
        return sorted((p for k in self.kernels() for p in k.processes()), key=lambda p: p.pid)

    def kernel_of(self, pid: int) -> Kernel:
        """The kernel running process `pid`."""
        for kernel in self.kernels():
            if kernel.has(pid):
                return kernel
        raise NoSuchProcessError(pid)
