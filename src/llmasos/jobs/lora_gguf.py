"""A peft LoRA adapter folder as a GGUF LoRA adapter that llama.cpp applies to its base model.

peft writes adapter_config.json and adapter_model.safetensors, with one pair of tensors per
adapted linear layer:

    base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight   (r, in_features)
    base_model.model.model.layers.3.self_attn.q_proj.lora_B.weight   (out_features, r)

llama.cpp's adapter (the format of its convert_lora_to_gguf.py, loaded by llama_adapter_lora_init)
is a GGUF with general.type "adapter", adapter.type "lora", adapter.lora.alpha and, per layer,
`<base tensor name>.lora_a` and `.lora_b`, the same two matrices (GGUF lists dimensions in the
reverse order, so A reads as ne = (in, r) and B as ne = (r, out), which is what llama.cpp checks
against the base weight's (in, out)). The base tensor names come from gguf-py's tensor-name maps.

llama.cpp scales a layer's update by alpha / r, r being that layer's rank; peft scales it by
lora_alpha / r (or / sqrt(r) with use_rslora). Where the two differ, B is scaled here so that the
product is peft's.

Only architectures whose llama.cpp conversion renames the linear weights without changing them
are accepted: llama's converter, for one, permutes the rows of q and k for its rotary layout,
and an adapter of those layers would need the same permutation. Embedding and output-head
adapters are refused too: llama.cpp applies an embedding update before Gemma's embedding scale,
peft after it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from llmasos.errors import InvalidRequestError, ModelFileError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# Architectures whose linear weights llama.cpp's converter only renames (read in its
# conversion/gemma.py and conversion/qwen.py: norms and embeddings change, linear layers don't).
PLAIN_ARCHITECTURES = frozenset({"gemma", "gemma2", "gemma3", "qwen2", "qwen3"})
_PEFT_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
_BLOCK_INDEX = re.compile(r"\.(\d+)\.")


@dataclass
class _Pair:
    """One adapted layer's two matrices (A: r x in, B: out x r)."""

    a: np.ndarray | None = None
    b: np.ndarray | None = None


def write_lora_gguf(adapter_dir: Path, out: Path, *, architecture: str = "gemma3") -> None:
    """Write the peft adapter in `adapter_dir` to `out` as a GGUF LoRA adapter for a base model
    of `architecture` (a GGUF general.architecture). ModelFileError when the folder is not a
    plain LoRA adapter of that architecture's linear layers."""
    arch = _model_arch(architecture)
    config = _read_config(adapter_dir)
    tensors = _read_tensors(adapter_dir)
    pairs = _pairs(tensors, arch, adapter_dir)
    alpha = float(config["lora_alpha"])
    writer = gguf.GGUFWriter(str(out), architecture)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(adapter_dir.name)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        for name, pair in sorted(pairs.items()):
            a, b = pair.a, pair.b
            assert a is not None and b is not None  # _pairs checked
            b = b * _b_scale(config, a.shape[0])
            writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a, dtype=np.float32))
            writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        out.unlink(missing_ok=True)
        raise
    writer.close()


def _model_arch(architecture: str) -> gguf.MODEL_ARCH:
    if architecture not in PLAIN_ARCHITECTURES:
        raise InvalidRequestError(
            "architecture",
            f"LoRA adapters can be converted for {sorted(PLAIN_ARCHITECTURES)}, not "
            f"{architecture!r}",
        )
    return next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == architecture)


def _read_config(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelFileError(path, f"cannot be read as a peft adapter config ({error})") from error
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise ModelFileError(path, "is not a peft LoRA config (peft_type is not LORA)")
    refusals = {
        "use_dora": "DoRA adapters have no llama.cpp form",
        "fan_in_fan_out": "fan_in_fan_out (Conv1D) layers are not supported",
        "alpha_pattern": "per-layer alphas (alpha_pattern) are not supported",
        "lora_bias": "adapters with a bias (lora_bias) are not supported",
        "modules_to_save": "fully trained modules (modules_to_save) are not supported",
    }
    for key, reason in refusals.items():
        if config.get(key):
            raise ModelFileError(path, f"sets {key}: {reason}")
    alpha = config.get("lora_alpha")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise ModelFileError(path, f"has lora_alpha {alpha!r}; it must be a positive number")
    return config


def _read_tensors(adapter_dir: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = adapter_dir / WEIGHTS_FILE
    try:
        try:
            return load_file(path)
        except TypeError:  # bfloat16, which NumPy has no type for: torch reads it
            import torch
            from safetensors.torch import load_file as load_torch

            return {k: v.to(torch.float32).numpy() for k, v in load_torch(path).items()}
    except (OSError, SafetensorError, ValueError, TypeError, ImportError) as error:
        raise ModelFileError(path, f"cannot be read as safetensors ({error})") from error


def _pairs(tensors: dict[str, np.ndarray], arch: gguf.MODEL_ARCH, where: Path) -> dict[str, _Pair]:
    """The adapter's (A, B) pairs by GGUF base tensor name; ModelFileError for a tensor that
    names no linear layer of a block, or a pair that is incomplete or of mismatched shapes."""
    if not tensors:
        raise ModelFileError(where / WEIGHTS_FILE, "holds no tensors")
    blocks = 1 + max((int(n) for key in tensors for n in _BLOCK_INDEX.findall(key)), default=0)
    names = gguf.get_tensor_name_map(arch, blocks)
    pairs: dict[str, _Pair] = {}
    for key, value in tensors.items():
        match = _PEFT_KEY.match(key)
        if "lora_embedding_" in key:
            raise ModelFileError(where, f"adapts the token embeddings ({key!r}): not supported")
        if match is None:
            raise ModelFileError(where, f"has tensor {key!r}, which is not a LoRA A or B matrix")
        mapped = names.get_type_and_name(match["module"])
        if mapped is None or not mapped[1].startswith("blk."):
            raise ModelFileError(
                where,
                f"adapts {match['module']!r}, which is not a linear layer of a transformer block "
                f"of a {gguf.MODEL_ARCH_NAMES[arch]} model (embedding and output adapters are "
                "not supported)",
            )
        if value.ndim != 2:
            raise ModelFileError(where, f"has tensor {key!r} of shape {value.shape}, not 2-D")
        pair = pairs.setdefault(f"{mapped[1]}.weight", _Pair())
        setattr(pair, match["part"].lower(), value)
    for name, pair in pairs.items():
        if pair.a is None or pair.b is None:
            raise ModelFileError(where, f"has only one of the A and B matrices of {name}")
        if pair.a.shape[0] != pair.b.shape[1]:
            raise ModelFileError(
                where, f"has A {pair.a.shape} and B {pair.b.shape} of different ranks for {name}"
            )
    return pairs


def _b_scale(config: dict[str, Any], rank: int) -> float:
    """What B is multiplied by so that llama.cpp's alpha / rank equals peft's scaling: 1, or
    sqrt(rank) for rsLoRA (alpha / sqrt(rank) = alpha / rank * sqrt(rank))."""
    return math.sqrt(rank) if config.get("use_rslora") else 1.0
