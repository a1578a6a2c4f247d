"""Loaded models: each with its own engine and kernel (an embedding model: its embedder), all
within a memory budget.

The manager is the program loader. A model is loaded from the repository when first asked for,
placed on a device by the fit policy, and kept while it is used. Idle models (no live process,
no call in flight) are unloaded when their keep-alive runs out, or, least recently used first,
when a new model needs their room; a pinned model (the one a server was started with) never is.

Concurrency: the manager's lock guards only its books. Loading an engine and closing a kernel
happen outside it: a load registers a "loading" entry (its bytes reserved) that other callers
for the same name wait on, so a slow load never freezes callers for other models. Callers use a
model through lease(), which counts them as in flight: nothing is unloaded under a lease.
Monitoring reads (loaded(), peek(), kernels()) neither load anything nor reset a keep-alive.
All kernels draw pids from one counter, so a pid names one process whichever model runs it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from llmasos.engine.base import Embedder, Engine
from llmasos.errors import (
    InvalidRequestError,
    MemoryBudgetError,
    ModelBusyError,
    ModelPinnedError,
    NoSuchProcessError,
    UnknownModelError,
    UnprocessableError,
)
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import Process
from llmasos.models.default import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_MODEL,
    canonical_model_name,
    ensure_default_embedding_model,
    ensure_default_model,
)
from llmasos.models.gguf_info import is_encoder
from llmasos.models.manifest import Manifest
from llmasos.models.placement import Device, FitPolicy, place
from llmasos.models.repository import Repository
from llmasos.runtime.loaded import LoadedModel, LoadedModelInfo, Loading

logger = logging.getLogger(__name__)

MIB = 1 << 20
DEFAULT_KEEP_ALIVE_S = 300.0


class EngineLoader(Protocol):
    """Builds an engine for the GGUF at `path` on `device`; with `adapter`, the LoRA adapter at
    that path applied. The manager passes `adapter` only for adapter models, so a loader of
    plain models may leave it out."""

    def __call__(
        self, path: Path, name: str, device: Device, /, adapter: Path | None = None
    ) -> Engine: ...


EmbedderLoader = Callable[[Path, str, Device], Embedder]


class ModelManager:
    def __init__(
        self,
        repository: Repository | None,
        *,
        kernel_config: KernelConfig,
        load_engine: EngineLoader,
        kv_bytes_for: Callable[[Manifest], int],
        load_embedder: EmbedderLoader | None = None,
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
        self._load_embedder = load_embedder
        self._kv_bytes_for = kv_bytes_for
        self._clock = clock
        self.pids = itertools.count(1)  # shared by every kernel and the agents
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, Loading] = {}
        self._retiring: list[LoadedModel] = []  # being closed; their bytes still count
        self._lock = threading.Condition()
        self._default_import = threading.Lock()

    def canonical(self, name: str | None) -> str:
        """The name `name` is loaded under (the default model for None)."""
        return canonical_model_name(name or self.default_model)

    # -- using and loading -----------------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, name: str | None = None) -> Iterator[LoadedModel]:
        """The model `name` (the default if None), loaded if needed and kept loaded until the
        block ends."""
        loaded = self._acquire(self.canonical(name))
        try:
            yield loaded
        finally:
            with self._lock:
                loaded.leases -= 1
                loaded.last_used = self._clock()
                self._lock.notify_all()

    def load(self, name: str | None = None, *, pin: bool = False) -> LoadedModel:
        """Load `name` now (a no-op when loaded) and return it; `pin` keeps it loaded for good."""
        with self.lease(name) as loaded, self._lock:
            if pin:
                loaded.pinned = True
                loaded.keep_alive_s = None
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

    def _acquire(self, name: str) -> LoadedModel:
        """`name` with a lease taken: loaded already, loaded by the load under way (waited
        for; its error re-raised), or loaded by this caller."""
        manifest: Manifest | None = None
        while True:
            with self._lock:
                loaded = self._loaded.get(name)
                if loaded is not None:
                    loaded.leases += 1
                    loaded.last_used = self._clock()
                    return loaded
                loading = self._loading.get(name)
                mine = loading is None and manifest is not None
                if mine:
                    need = manifest.size_bytes + self._kv_bytes_for(manifest)  # type: ignore[union-attr]
                    room = self._make_room(name, need)
                    if room is None:  # models being closed still hold the memory
                        self._lock.wait()
                        continue
                    device, victims = room
                    for victim in victims:
                        self._retire(victim)
                    loading = self._loading[name] = Loading(device, need)
                elif loading is not None:
                    loading.waiters += 1
            if mine:
                return self._load(name, manifest, loading, victims)  # type: ignore[arg-type]
            if loading is not None:
                loading.done.wait()
                if loading.error is not None:
                    raise loading.error
            else:  # outside the lock: reading it (or importing the default model) takes time
                manifest = self._manifest(name)

    def _load(
        self, name: str, manifest: Manifest, loading: Loading, victims: list[LoadedModel]
    ) -> LoadedModel:
        """Load `name` for its registered `loading` entry, outside the lock; the model comes
        back with the caller's lease taken, so nothing unloads it before the caller uses it."""
        try:
            runner = self._build_runner(name, manifest, loading.device, victims)
        except BaseException as error:
            loading.error = error
            with self._lock:
                del self._loading[name]
                self._lock.notify_all()
            loading.done.set()
            raise
        now = self._clock()
        model = LoadedModel(
            name, runner, loading.device.name, loading.memory_bytes, self.keep_alive_s, now, now
        )
        model.leases = 1
        with self._lock:
            self._loaded[name] = model
            del self._loading[name]
            self._lock.notify_all()
        loading.done.set()
        return model

    def _build_runner(
        self, name: str, manifest: Manifest, device: Device, victims: list[LoadedModel]
    ) -> Kernel | Embedder:
        self._close(victims)  # their memory is this model's now
        files = self.repository.model_files(manifest)  # type: ignore[union-attr]
        if is_encoder(manifest.architecture):
            if self._load_embedder is None:
                raise InvalidRequestError("model", f"{name}: this server loads no embedding models")
            return self._load_embedder(files.model, name, device)
        if files.adapter is None:
            engine = self._load_engine(files.model, name, device)
        else:  # the base model's GGUF, with the adapter applied
            engine = self._load_engine(files.model, name, device, adapter=files.adapter)
        try:
            return Kernel(engine, self.kernel_config, pids=self.pids)
        except BaseException:
            engine.close()
            raise

    def _manifest(self, name: str) -> Manifest:
        if self.repository is None:
            raise UnknownModelError(name, sorted(self._loaded))
        if name in (DEFAULT_MODEL, DEFAULT_EMBEDDING_MODEL):
            with self._default_import:  # one import at a time; the books stay unlocked
                ensure = (
                    ensure_default_model
                    if name == DEFAULT_MODEL
                    else ensure_default_embedding_model
                )
                ensure(self.repository)
        manifest = self.repository.show(name)
        if manifest.format != "gguf":  # a speech model: the audio routes run it, not a kernel
            raise UnprocessableError(
                "model", f"{name} is a {manifest.architecture} ({manifest.format}) model; the "
                "/v1/audio routes run it, not generation or embeddings"
            )  # fmt: skip
        return manifest

    def _make_room(self, name: str, need: int) -> tuple[Device, list[LoadedModel]] | None:
        """(a device with `need` bytes free, the idle models to unload for it, least recently
        used first), or None to wait for models being closed, whose memory will do. Holds the
        lock."""
        waiting_helps = self._retiring and self._place(need, list(self._retiring)) is not None
        if waiting_helps and self._place(need, []) is None:
            return None
        victims: list[LoadedModel] = []
        while (device := self._place(need, victims)) is None:
            idle = [m for m in self._loaded.values() if m.idle and m not in victims]
            if not idle:
                if self._retiring:
                    return None
                raise MemoryBudgetError(self._no_room_message(name, need))
            victims.append(min(idle, key=lambda m: m.last_used))
        return device, victims

    def _place(self, need: int, leaving: list[LoadedModel]) -> Device | None:
        used: dict[str, int] = {}
        resident = [m for m in [*self._loaded.values(), *self._retiring] if m not in leaving]
        for device, size in [(m.device, m.memory_bytes) for m in resident] + [
            (entry.device.name, entry.memory_bytes) for entry in self._loading.values()
        ]:
            used[device] = used.get(device, 0) + size
        return place(need, self.devices, used, self.placement)

    def _no_room_message(self, name: str, need: int) -> str:
        used: dict[str, int] = {}
        for model in self._loaded.values():
            used[model.device] = used.get(model.device, 0) + model.memory_bytes
        free = {d.name: (d.capacity_bytes - used.get(d.name, 0)) // MIB for d in self.devices}
        return (
            f"model: {name} needs {need // MIB} MiB; free MiB per device: {free}, and every "
            "loaded model is in use or pinned; wait, or raise --memory-budget"
        )

    # -- unloading -------------------------------------------------------------------------

    def unload(self, name: str) -> None:
        canonical = canonical_model_name(name)
        with self._lock:
            loaded = self._loaded.get(canonical)
            if loaded is None:
                raise UnknownModelError(f"{name} (not loaded)", sorted(self._loaded))
            if loaded.pinned:
                raise ModelPinnedError(canonical, "unload")
            live = loaded.live_processes
            if live or loaded.leases:
                raise ModelBusyError(canonical, live + loaded.leases)
            self._retire(loaded)
        self._close([loaded])

    def check_removable(self, name: str) -> None:
        """Refuse to delete the pinned model from the repository."""
        canonical = canonical_model_name(name)
        with self._lock:
            loaded = self._loaded.get(canonical)
            if loaded is not None and loaded.pinned:
                raise ModelPinnedError(canonical, "delete")

    def reap_idle(self) -> list[str]:
        """Unload the models idle for longer than their keep-alive; return their names."""
        now = self._clock()
        with self._lock:
            expired = [
                m
                for m in self._loaded.values()
                if m.keep_alive_s is not None and m.idle and now - m.last_used > m.keep_alive_s
            ]
            for model in expired:
                self._retire(model)
        self._close(expired)
        return [m.name for m in expired]

    def _retire(self, model: LoadedModel) -> None:
        del self._loaded[model.name]
        self._retiring.append(model)

    def _close(self, models: list[LoadedModel]) -> None:
        """Close kernels and embedders outside the lock; their memory counts until each is
        closed. A close that fails is logged: the model is gone from the books either way."""
        for model in models:
            try:
                model.runner.close()
            except Exception:
                logger.exception("model %s: closing its kernel failed", model.name)
            finally:
                with self._lock:
                    if model in self._retiring:
                        self._retiring.remove(model)
                    self._lock.notify_all()

    def close(self) -> None:
        with self._lock:
            models = list(self._loaded.values())
            for model in models:
                self._retire(model)
        self._close(models)

    # -- looking (never loads, never touches a keep-alive) ---------------------------------

    def loaded(self) -> list[LoadedModelInfo]:
        now = self._clock()
        with self._lock:
            return [
                LoadedModelInfo(
                    m.name,
                    m.device,
                    m.memory_bytes,
                    m.live_processes,
                    round(now - m.last_used, 3),
                    m.keep_alive_s,
                )
                for m in self._loaded.values()
            ]

    def is_loaded(self, name: str) -> bool:
        with self._lock:
            return canonical_model_name(name) in self._loaded

    def peek(self, name: str | None = None) -> Kernel | None:
        """The kernel of `name` if it is loaded now, else None."""
        with self._lock:
            loaded = self._loaded.get(self.canonical(name))
            return loaded.runner if loaded and isinstance(loaded.runner, Kernel) else None

    def kernels(self) -> dict[str, Kernel]:
        """Every loaded generation model's kernel, by name."""
        with self._lock:
            return {n: m.runner for n, m in self._loaded.items() if isinstance(m.runner, Kernel)}

    def processes(self) -> list[Process]:
        kernels = self.kernels().values()
        return sorted((p for k in kernels for p in k.processes()), key=lambda p: p.pid)

    def kernel_of(self, pid: int) -> Kernel:
        """The kernel running process `pid`."""
        for kernel in self.kernels().values():
            if kernel.has(pid):
                return kernel
        raise NoSuchProcessError(pid)
