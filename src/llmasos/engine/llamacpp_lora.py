"""A LoRA adapter applied to a llama.cpp context.

llama_adapter_lora_init reads the adapter GGUF against a loaded model (its tensors must name the
model's weights, with matching shapes); llama_set_adapters_lora makes a context add the
adapter's update, scaled by `scale` x alpha / rank, to every matrix product with those weights.
The base weights are not changed: a context without the adapter computes the base model
exactly, and other contexts of the same model are unaffected. The adapter is freed before its
model (llama.cpp would free it with the model otherwise).
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import llama_cpp

from llmasos.errors import EngineError


def apply_lora(
    model: llama_cpp.llama_model_p, ctx: llama_cpp.llama_context_p, path: Path, scale: float
) -> llama_cpp.llama_adapter_lora_p:
    """Load the adapter at `path` for `model` and apply it to `ctx` at `scale`; EngineError
    naming the file when llama.cpp refuses it (the log says why)."""
    if not math.isfinite(scale):
        raise EngineError(f"adapter scale: must be a finite number, got {scale!r}")
    if not path.is_file():
        raise EngineError(f"adapter: no GGUF file at {path}")
    adapter = llama_cpp.llama_adapter_lora_init(model, str(path).encode())
    if not adapter:
        raise EngineError(
            f"adapter: llama.cpp could not load {path} for this model (not a LoRA adapter of "
            "its architecture and shapes?)"
        )
    adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
    scales = (ctypes.c_float * 1)(scale)
    if llama_cpp.llama_set_adapters_lora(ctx, adapters, 1, scales) != 0:
        llama_cpp.llama_adapter_lora_free(adapter)
        raise EngineError(f"adapter: llama.cpp could not apply {path} to the context")
    return adapter


def free_lora(adapter: llama_cpp.llama_adapter_lora_p | None) -> None:
    """Free an adapter from apply_lora (after its context, before its model)."""
    if adapter:
        llama_cpp.llama_adapter_lora_free(adapter)
