"""LoRA adapters in the model repository: import over a base, what the manifest says, refusals,
and a base that cannot go while adapters name it."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

from llmasos.errors import InvalidRequestError, ModelFileError, ModelInUseError, UnknownModelError
from llmasos.models.manifest import Manifest
from llmasos.models.repository import UNREADABLE, ModelFiles, Repository
from tests.fixtures.tiny_gguf import N_EMBD, write_tiny_gguf


def write_adapter(
    path: Path,
    architecture: str = "llama",
    shape: tuple[int, int] = (N_EMBD, N_EMBD),
    b: float = 1.0,
) -> Path:
    """A GGUF LoRA adapter (rank 2) of a blk.0 q projection of `shape` (inputs, outputs): the
    tiny model's by default; with `b` 0 it changes nothing."""
    n_in, n_out = shape
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 2.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.ones((2, n_in), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.full((n_out, 2), b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def repo(tmp_path) -> Repository:
    repository = Repository(tmp_path / "models")
    repository.import_file(write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny:base")
    return repository


@pytest.fixture
def adapter(tmp_path) -> Path:
    return write_adapter(tmp_path / "adapter.gguf")


def test_an_adapter_runs_its_base_and_says_so(repo, adapter):
    base = repo.show("tiny:base")
    manifest = repo.import_adapter(adapter, "tiny:lora", "tiny:base")
    assert manifest.base == "tiny:base"
    same = ("architecture", "context_length", "chat_template", "kv_bytes_per_token", "license")
    assert all(getattr(manifest, f) == getattr(base, f) for f in same)
    assert manifest.size_bytes == base.size_bytes + adapter.stat().st_size
    assert manifest.parameters == base.parameters + 2 * 2 * N_EMBD
    assert repo.show("tiny:lora") == manifest
    assert repo.model_files(manifest) == ModelFiles(repo.blob_path(base), repo.blob_path(manifest))
    assert repo.model_files(base) == ModelFiles(repo.blob_path(base))
    assert repo.adapters_of("tiny:base") == ["tiny:lora"]


def test_a_private_adapter_names_its_owner_and_unknown_names_never_list_it(repo, adapter):
    shared = repo.import_adapter(adapter, "tiny:lora", "tiny:base")
    private = repo.import_adapter(adapter, "ann.mine:lora", "tiny:base", owner="ann")
    assert (shared.owner, private.owner) == (None, "ann")
    assert repo.show("ann.mine:lora").owner == "ann"
    assert [repo.owner_of(n) for n in ("ann.mine:lora", "tiny:lora", "no:such", "BAD NAME")] == [
        "ann",
        None,
        None,
        None,
    ]
    with pytest.raises(UnknownModelError) as unknown:
        repo.show("nothing:here")
    assert "tiny:lora" in str(unknown.value) and "ann.mine" not in str(unknown.value)
    assert str(repo.unknown("nothing:here")) == str(unknown.value)
    (repo.manifests / "ann.mine" / "lora.json").write_text("{not json")
    assert repo.owner_of("ann.mine:lora") == UNREADABLE  # private to no one, not shared


def test_a_base_with_adapters_cannot_be_removed_until_they_are(repo, adapter):
    manifest = repo.import_adapter(adapter, "tiny:lora", "tiny:base")
    repo.tag("tiny:lora", "tiny:lora2")
    with pytest.raises(ModelInUseError, match="tiny:lora, tiny:lora2; remove them first"):
        repo.remove("tiny:base")
    assert "tiny:base" in repo
    repo.remove("tiny:lora")
    assert repo.blob_path(manifest).exists()  # tiny:lora2 still uses it
    repo.remove("tiny:lora2")
    assert not repo.blob_path(manifest).exists()
    repo.remove("tiny:base")
    assert repo.names() == []


def test_an_adapter_imported_as_a_model_is_refused_with_what_to_do(repo, adapter):
    with pytest.raises(ModelFileError, match=r"is a LoRA adapter.*--base"):
        repo.import_file(adapter, "tiny:lora")
    assert "tiny:lora" not in repo
    assert len(list(repo.blobs.iterdir())) == 1


def test_adapters_that_do_not_fit_their_base_are_refused(repo, tmp_path):
    with pytest.raises(ModelFileError, match="not a LoRA adapter"):
        repo.import_adapter(write_tiny_gguf(tmp_path / "model.gguf"), "x:lora", "tiny:base")
    gemma = write_adapter(tmp_path / "gemma.gguf", "gemma3")
    with pytest.raises(ModelFileError, match="for gemma3 models; tiny:base is llama"):
        repo.import_adapter(gemma, "x:lora", "tiny:base")
    adapter = write_adapter(tmp_path / "adapter.gguf")
    with pytest.raises(UnknownModelError):
        repo.import_adapter(adapter, "x:lora", "nothing:here")
    repo.import_adapter(adapter, "tiny:lora", "tiny:base")
    with pytest.raises(InvalidRequestError, match="base: tiny:lora is itself an adapter"):
        repo.import_adapter(adapter, "x:lora", "tiny:lora")
    assert repo.names() == ["tiny:base", "tiny:lora"]
    assert len(list(repo.blobs.iterdir())) == 2


def test_manifests_written_before_adapters_existed_still_load(repo):
    path = repo.manifests / "tiny" / "base.json"
    fields = json.loads(path.read_text())
    del fields["base"]
    path.write_text(json.dumps(fields))
    assert repo.show("tiny:base") == Manifest(**fields, base=None)
