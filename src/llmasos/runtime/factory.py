"""The composition root: builds engines (for a model name or GGUF path, for the Client) and the
model manager with its devices and loader. The only module that knows every concrete class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from llmasos.engine.base import EXACT_KV_CACHE_TYPE, KV_BYTES_PER_VALUE, Embedder, Engine
from llmasos.engine.devices import DeviceKind, discover_devices
from llmasos.errors import InvalidRequestError
from llmasos.kernel.config import KernelConfig
from llmasos.models.default import DEFAULT_MODEL, canonical_model_name, ensure_default_model
from llmasos.models.manifest import Manifest
from llmasos.models.placement import Device, FitPolicy
from llmasos.models.repository import Repository
from llmasos.runtime.manager import DEFAULT_KEEP_ALIVE_S, EngineLoader, ModelManager
from llmasos.settings import Settings

CPU = Device("cpu", 0)  # where a standalone engine runs (a budget applies only under a manager)
CPU_BUDGET_SHARE = 0.5  # of physical RAM, when no budget is given
GPU_BUDGET_SHARE = 0.9  # of each GPU's memory, when no budget is given


OPTION_LIMITS = {
    "num_slots": 256,
    "context_length": 1 << 20,
    "max_batch_tokens": 1 << 16,
    "n_threads": 1024,
}


@dataclass(frozen=True)
class EngineOptions:
    """Engine sizing: `num_slots` sequences of up to `context_length` tokens each stay resident
    in the KV cache at once (about 10 KB per token for the default model)."""

    num_slots: int = 16
    context_length: int = 4096
    max_batch_tokens: int = 512
    n_threads: int | None = None
    kv_cache_type: str = EXACT_KV_CACHE_TYPE  # or "f16": faster prefill, not exact

    def __post_init__(self) -> None:
        if self.kv_cache_type not in KV_BYTES_PER_VALUE:
            raise InvalidRequestError(
                "kv_cache_type",
                f"must be one of {sorted(KV_BYTES_PER_VALUE)}, got {self.kv_cache_type!r}",
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "kv_cache_type" or (value is None and f.name == "n_threads"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequestError(f.name, f"must be an integer >= 1, got {value!r}")
        for name, limit in OPTION_LIMITS.items():
            value = getattr(self, name)
            if value is not None and value > limit:
                raise InvalidRequestError(name, f"must be <= {limit}, got {value}")


def load_engine(model: str | None, options: EngineOptions) -> Engine:
    """An engine for `model`: a repository name (the default model if None, imported on first
    use; an adapter loads its base with the adapter applied) or the path of a GGUF file."""
    if model is not None and is_model_file(model):
        return engine_loader(options)(Path(model), model, CPU)
    name = canonical_model_name(model or DEFAULT_MODEL)
    repository = Repository(Settings.from_environment().home / "models")
    if name == DEFAULT_MODEL:
        ensure_default_model(repository)
    files = repository.model_files(repository.show(name))
    return engine_loader(options)(files.model, name, CPU, adapter=files.adapter)


def is_model_file(model: str) -> bool:
    """True for a path to a model file (has a directory part or ends in .gguf, and exists)."""
    return ("/" in model or model.endswith(".gguf")) and Path(model).is_file()


def engine_loader(options: EngineOptions) -> EngineLoader:
    """Builds llama.cpp engines of the given size (the model manager's loader); with
    `adapter`, the LoRA adapter at that path is applied to the model."""

    def load(path: Path, name: str, device: Device, adapter: Path | None = None) -> Engine:
        from llmasos.engine.llamacpp import LlamaCppEngine  # loads llama.cpp: only when needed

        return LlamaCppEngine(
            path,
            model_name=name,
            num_slots=options.num_slots,
            context_length=options.context_length,
            max_batch_tokens=options.max_batch_tokens,
            n_threads=options.n_threads,
            gpu_index=device.gpu_index,
            kv_cache_type=options.kv_cache_type,
            adapter_path=adapter,
        )

    return load


def embedder_loader(options: EngineOptions) -> Callable[[Path, str, Device], Embedder]:
    """Builds llama.cpp embedders (the model manager's loader for embedding models)."""

    def load(path: Path, name: str, device: Device) -> Embedder:
        from llmasos.engine.embedder import LlamaCppEmbedder  # loads llama.cpp: only when needed

        return LlamaCppEmbedder(
            path, model_name=name, n_threads=options.n_threads, gpu_index=device.gpu_index
        )

    return load


def kv_cache_bytes(options: EngineOptions) -> Callable[[Manifest], int]:
    """The KV cache an engine of this size allocates for a model (its scratch slot included);
    manifests record the bytes per token of a q8_0 cache."""
    scale = KV_BYTES_PER_VALUE[options.kv_cache_type] / KV_BYTES_PER_VALUE["q8_0"]
    cells = (options.num_slots + 1) * options.context_length
    return lambda m: int(m.kv_bytes_per_token * scale) * cells


def model_manager(
    config: KernelConfig,
    options: EngineOptions,
    *,
    home: Path,
    memory_budget_bytes: int | None = None,
    placement: FitPolicy = FitPolicy.FIRST_FIT,
    keep_alive_s: float | None = DEFAULT_KEEP_ALIVE_S,
    default_model: str = DEFAULT_MODEL,
) -> ModelManager:
    """A model manager loading llama.cpp engines of the given size from the repository under
    `home`, within the memory budget (default: a share of RAM)."""
    return ModelManager(
        Repository(home / "models"),
        kernel_config=config,
        load_engine=engine_loader(options),
        kv_bytes_for=kv_cache_bytes(options),
        load_embedder=embedder_loader(options),
        devices=default_devices(memory_budget_bytes),
        placement=placement,
        keep_alive_s=keep_alive_s,
        default_model=default_model,
    )


def default_devices(budget_bytes: int | None = None) -> list[Device]:
    """Where models may go: every GPU when there are any, else the CPU. Each device's capacity
    is `budget_bytes`, or by default half the RAM (CPU) or 90% of the GPU's memory."""
    found = discover_devices()
    gpus = [d for d in found if d.kind is DeviceKind.GPU]
    if gpus:
        return [
            Device(
                f"gpu:{g.index}",
                budget_bytes or int(g.total_bytes * GPU_BUDGET_SHARE),
                gpu_index=g.index,
            )
            for g in gpus
        ]
    ram = next(d.total_bytes for d in found if d.kind is DeviceKind.CPU)
    return [Device("cpu", budget_bytes or int(ram * CPU_BUDGET_SHARE))]
