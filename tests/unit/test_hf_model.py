"""hf_copy: made once per blob digest, atomically, one maker at a time; adapters have none.

Most tests replace the conversion (transformers) with a stub that writes a folder, so they run
without torch; the last converts the tiny llama GGUF for real when transformers is installed.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from pathlib import Path

import pytest

from llmasos.errors import InvalidRequestError, ModelFileError
from llmasos.jobs import hf_model
from llmasos.jobs.hf_model import hf_copy
from llmasos.models.repository import Repository
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.unit.test_repository_adapters import write_adapter


@pytest.fixture
def repo(tmp_path) -> Repository:
    repository = Repository(tmp_path / "models")
    repository.import_file(write_tiny_gguf(tmp_path / "tiny.gguf"), "tiny")
    return repository


@pytest.fixture
def conversions(monkeypatch) -> list[Path]:
    """Stub out transformers: each conversion (recorded) writes a config.json, slowly."""
    calls: list[Path] = []

    def convert(blob: Path, work: Path, label: str) -> Path:
        calls.append(blob)
        time.sleep(0.2)  # long enough for a second caller to arrive meanwhile
        out = work / "out"
        out.mkdir()
        (out / "config.json").write_text("{}")
        return out

    monkeypatch.setattr(hf_model, "_convert", convert)
    return calls


def test_the_copy_is_made_once_under_the_blob_digest(repo, conversions):
    manifest = repo.show("tiny:latest")
    repo.tag("tiny", "again")
    folder = hf_copy(repo, "tiny")
    assert folder == repo.root / "hf" / manifest.digest.removeprefix("sha256:")
    assert hf_copy(repo, "again") == folder  # another name of the same blob
    assert conversions == [repo.blob_path(manifest)]
    assert [p.name for p in folder.parent.iterdir() if p.is_dir()] == [folder.name]


def test_concurrent_callers_wait_for_one_conversion(repo, conversions):
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        folders = list(pool.map(lambda _: hf_copy(repo, "tiny"), range(3)))
    assert len(set(folders)) == 1 and len(conversions) == 1


def test_a_failed_conversion_leaves_nothing_and_the_next_call_retries(repo, monkeypatch):
    def broken(blob: Path, work: Path, label: str) -> Path:
        (work / "out").mkdir()
        raise ModelFileError(label, "cannot be loaded by transformers for training (injected)")

    monkeypatch.setattr(hf_model, "_convert", broken)
    with pytest.raises(ModelFileError, match="injected"):
        hf_copy(repo, "tiny")
    assert [p for p in (repo.root / "hf").iterdir() if p.is_dir()] == []
    digest = repo.show("tiny").digest.removeprefix("sha256:")
    stale = repo.root / "hf" / f".{digest}.partial-dead"  # its process died converting
    stale.mkdir()
    done = threading.Event()

    def works(blob: Path, work: Path, label: str) -> Path:
        done.set()
        (work / "out").mkdir()
        return work / "out"

    monkeypatch.setattr(hf_model, "_convert", works)
    assert hf_copy(repo, "tiny").is_dir() and done.is_set()
    assert not stale.exists()


def test_an_adapter_has_no_copy_of_its_own(repo, tmp_path):
    repo.import_adapter(write_adapter(tmp_path / "lora.gguf"), "tiny:lora", "tiny")
    with pytest.raises(InvalidRequestError, match="tiny:lora is a LoRA adapter over tiny:latest"):
        hf_copy(repo, "tiny:lora")


def test_transformers_converts_the_tiny_gguf_into_a_loadable_folder(repo):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    folder = hf_copy(repo, "tiny")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    model = transformers.AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert tokenizer("the model")["input_ids"]
