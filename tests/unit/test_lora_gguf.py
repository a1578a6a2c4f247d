"""write_lora_gguf on small hand-made peft adapter folders: names, shapes, scaling, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from llmasos.errors import InvalidRequestError, ModelFileError
from llmasos.jobs.lora_gguf import write_lora_gguf
from llmasos.models.gguf_info import read_gguf_info

RANK, HIDDEN, Q_OUT, V_OUT = 4, 16, 32, 8
PREFIX = "base_model.model.model.layers"


def lora_pair(layer: int, module: str, out: int, rng: np.random.Generator) -> dict:
    key = f"{PREFIX}.{layer}.self_attn.{module}"
    return {
        f"{key}.lora_A.weight": rng.standard_normal((RANK, HIDDEN)).astype(np.float32),
        f"{key}.lora_B.weight": rng.standard_normal((out, RANK)).astype(np.float32),
    }


def adapter_folder(path: Path, tensors: dict | None = None, **config) -> Path:
    """A peft LoRA folder: q_proj and v_proj of layers 0 and 1, unless `tensors` are given."""
    rng = np.random.default_rng(0)
    if tensors is None:
        tensors = {}
        for layer in (0, 1):
            tensors |= lora_pair(layer, "q_proj", Q_OUT, rng)
            tensors |= lora_pair(layer, "v_proj", V_OUT, rng)
    path.mkdir(parents=True, exist_ok=True)
    settings = {"peft_type": "LORA", "r": RANK, "lora_alpha": 8, "target_modules": ["q_proj"]}
    (path / "adapter_config.json").write_text(json.dumps(settings | config))
    save_file(tensors, str(path / "adapter_model.safetensors"))
    return path


def read_back(path: Path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(path)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    return fields, {t.name: t for t in reader.tensors}


def test_layers_map_to_llama_cpp_names_with_its_shapes_and_metadata(tmp_path):
    folder = adapter_folder(tmp_path / "adapter")
    write_lora_gguf(folder, tmp_path / "a.gguf")
    fields, tensors = read_back(tmp_path / "a.gguf")
    assert fields["general.architecture"] == "gemma3"
    assert fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == 8.0
    assert sorted(tensors) == sorted(
        f"blk.{layer}.attn_{part}.weight.lora_{ab}"
        for layer in (0, 1)
        for part in ("q", "v")
        for ab in ("a", "b")
    )
    # GGUF lists dimensions innermost first: A is (in, r), B is (r, out), as llama.cpp checks
    assert list(tensors["blk.1.attn_q.weight.lora_a"].shape) == [HIDDEN, RANK]
    assert list(tensors["blk.1.attn_q.weight.lora_b"].shape) == [RANK, Q_OUT]
    assert list(tensors["blk.0.attn_v.weight.lora_b"].shape) == [RANK, V_OUT]
    source = load_file(folder / "adapter_model.safetensors")
    b = tensors["blk.1.attn_q.weight.lora_b"].data
    np.testing.assert_array_equal(b, source[f"{PREFIX}.1.self_attn.q_proj.lora_B.weight"])
    info = read_gguf_info(tmp_path / "a.gguf")
    assert info.is_adapter and info.architecture == "gemma3"
    assert (info.context_length, info.kv_bytes_per_token) == (0, 0)


def test_rslora_scaling_is_folded_into_b(tmp_path):
    plain = adapter_folder(tmp_path / "plain")
    rs = adapter_folder(tmp_path / "rs", use_rslora=True)
    write_lora_gguf(plain, tmp_path / "plain.gguf")
    write_lora_gguf(rs, tmp_path / "rs.gguf")
    name = "blk.0.attn_q.weight.lora_b"
    plain_b = read_back(tmp_path / "plain.gguf")[1][name].data
    rs_b = read_back(tmp_path / "rs.gguf")[1][name].data
    np.testing.assert_allclose(rs_b, plain_b * math.sqrt(RANK), rtol=1e-6)


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("model.embed_tokens", "not a linear layer of a transformer block"),
        ("lm_head", "not a linear layer of a transformer block"),
        ("model.layers.0.self_attn.nonsense", "not a linear layer"),
    ],
)
def test_layers_llama_cpp_cannot_take_are_refused(tmp_path, module, message):
    rng = np.random.default_rng(0)
    tensors = {
        f"base_model.model.{module}.lora_A.weight": rng.standard_normal((RANK, 8)),
        f"base_model.model.{module}.lora_B.weight": rng.standard_normal((8, RANK)),
    }
    folder = adapter_folder(tmp_path / "adapter", tensors)
    with pytest.raises(ModelFileError, match=message):
        write_lora_gguf(folder, tmp_path / "a.gguf")
    assert not (tmp_path / "a.gguf").exists()


def test_incomplete_or_foreign_tensors_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    pair = lora_pair(0, "q_proj", Q_OUT, rng)
    only_a = {k: v for k, v in pair.items() if "lora_A" in k}
    with pytest.raises(ModelFileError, match="only one of the A and B"):
        write_lora_gguf(adapter_folder(tmp_path / "a", only_a), tmp_path / "a.gguf")
    full = pair | {f"{PREFIX}.0.self_attn.q_proj.base_layer.weight": np.zeros((2, 2))}
    with pytest.raises(ModelFileError, match="not a LoRA A or B matrix"):
        write_lora_gguf(adapter_folder(tmp_path / "b", full), tmp_path / "b.gguf")
    other_rank = pair | {f"{PREFIX}.0.self_attn.q_proj.lora_B.weight": np.zeros((Q_OUT, 2))}
    with pytest.raises(ModelFileError, match="different ranks"):
        write_lora_gguf(adapter_folder(tmp_path / "c", other_rank), tmp_path / "c.gguf")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"alpha_pattern": {"q_proj": 4}}, "alpha_pattern"),
        ({"peft_type": "IA3"}, "not a peft LoRA config"),
        ({"lora_alpha": 0}, "lora_alpha"),
    ],
)
def test_adapters_without_a_llama_cpp_form_are_refused(tmp_path, config, message):
    folder = adapter_folder(tmp_path / "adapter", **config)
    with pytest.raises(ModelFileError, match=message):
        write_lora_gguf(folder, tmp_path / "a.gguf")


def test_a_missing_folder_and_an_unsupported_architecture_are_clear_errors(tmp_path):
    with pytest.raises(ModelFileError, match=r"adapter_config\.json"):
        write_lora_gguf(tmp_path / "nowhere", tmp_path / "a.gguf")
    folder = adapter_folder(tmp_path / "adapter")
    with pytest.raises(InvalidRequestError, match=r"architecture: .*'llama'"):
        write_lora_gguf(folder, tmp_path / "a.gguf", architecture="llama")


def test_a_bfloat16_adapter_is_read_through_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    folder = adapter_folder(tmp_path / "adapter")
    tensors = {
        k: torch.from_numpy(v).to(torch.bfloat16)
        for k, v in load_file(folder / "adapter_model.safetensors").items()
    }
    save_torch(tensors, str(folder / "adapter_model.safetensors"))
    write_lora_gguf(folder, tmp_path / "a.gguf")
    b = read_back(tmp_path / "a.gguf")[1]["blk.0.attn_q.weight.lora_b"].data
    expected = tensors[f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"].to(torch.float32).numpy()
    np.testing.assert_array_equal(b, expected)
