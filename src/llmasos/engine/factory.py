"""Builds the engine for a model name or GGUF path."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from llmasos.engine.base import Engine
from llmasos.errors import InvalidRequestError, UnknownModelError
from llmasos.models.default import (
    DEFAULT_MODEL,
    DEFAULT_MODEL_ALIASES,
    canonical_model_name,
    default_model_path,
)
from llmasos.settings import Settings


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
    """An engine for `model`: a known name, a GGUF path, or None for the default model."""
    from llmasos.engine.llamacpp import LlamaCppEngine  # loads llama.cpp: only when needed

    name = canonical_model_name(model or DEFAULT_MODEL)
    if name == DEFAULT_MODEL:
        path = default_model_path(Settings.from_environment().home)
    elif name.endswith(".gguf") and Path(name).is_file():
        path = Path(name)
    else:
        raise UnknownModelError(name, list(DEFAULT_MODEL_ALIASES))
    return LlamaCppEngine(
        path,
        model_name=name,
        num_slots=options.num_slots,
        context_length=options.context_length,
        max_batch_tokens=options.max_batch_tokens,
        n_threads=options.n_threads,
    )
