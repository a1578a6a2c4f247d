"""Builds engines: for a model name or GGUF path (Client), or as the model manager's loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from llmasos.engine.base import Engine
from llmasos.engine.devices import default_devices
from llmasos.errors import InvalidRequestError
from llmasos.kernel.config import KernelConfig
from llmasos.models.default import DEFAULT_MODEL, canonical_model_name, ensure_default_model
from llmasos.models.manager import DEFAULT_KEEP_ALIVE_S, ModelManager
from llmasos.models.placement import Device, FitPolicy
from llmasos.models.repository import Manifest, Repository
from llmasos.settings import Settings

CPU = Device("cpu", 0)  # where a standalone engine runs (a budget applies only under a manager)


@dataclass(frozen=True)
class EngineOptions:
    """Engine sizing: `num_slots` sequences of up to `context_length` tokens each stay resident
    in the KV cache at once (about 10 KB per token for the default model)."""

    num_slots: int = 16
    context_length: int = 4096
    max_batch_tokens: int = 512
    n_threads: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name == "n_threads":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequestError(f.name, f"must be an integer >= 1, got {value!r}")
        if self.num_slots > 256:
            raise InvalidRequestError("num_slots", f"must be <= 256, got {self.num_slots}")


def load_engine(model: str | None, options: EngineOptions) -> Engine:
    """An engine for `model`: a repository name (the default model if None, imported on first
    use) or the path of a GGUF file."""
    if model is not None and is_model_file(model):
        return engine_loader(options)(Path(model), model, CPU)
    name = canonical_model_name(model or DEFAULT_MODEL)
    repository = Repository(Settings.from_environment().home / "models")
    if name == DEFAULT_MODEL:
        ensure_default_model(repository)
    path = repository.blob_path(repository.show(name))
    return engine_loader(options)(path, name, CPU)


def is_model_file(model: str) -> bool:
    """True for a path to a model file (has a directory part or ends in .gguf, and exists)."""
    return ("/" in model or model.endswith(".gguf")) and Path(model).is_file()


def engine_loader(options: EngineOptions) -> Callable[[Path, str, Device], Engine]:
    """Builds llama.cpp engines of the given size (the model manager's loader)."""

    def load(path: Path, name: str, device: Device) -> Engine:
        from llmasos.engine.llamacpp import LlamaCppEngine  # loads llama.cpp: only when needed

        return LlamaCppEngine(
            path,
            model_name=name,
            num_slots=options.num_slots,
            context_length=options.context_length,
            max_batch_tokens=options.max_batch_tokens,
            n_threads=options.n_threads,
            gpu_index=device.gpu_index,
        )

    return load


def kv_cache_bytes(options: EngineOptions) -> Callable[[Manifest], int]:
    """The KV cache an engine of this size allocates for a model (its scratch slot included)."""
    return lambda m: m.kv_bytes_per_token * (options.num_slots + 1) * options.context_length


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
        devices=default_devices(memory_budget_bytes),
        placement=placement,
        keep_alive_s=keep_alive_s,
        default_model=default_model,
    )
