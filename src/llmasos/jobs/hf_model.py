"""A Hugging Face transformers copy of a repository model, for training on it.

    $LLMASOS_HOME/models/hf/
        <digest hex>/               config.json, model.safetensors, tokenizer files
        <digest hex>.lock           held while that copy is made (fcntl), so it is made once
        .<digest hex>.partial-*/    a copy being made (renamed into place when complete)

transformers reads the GGUF itself (gguf_file=): the weights come back dequantised to float32
(for the default model, 270M parameters: about 64 s and 1.8 GiB of memory on 2 cores, 1 GiB on
disk) and the tokenizer from the GGUF's vocabulary (about 35 s). Both are made once per blob
digest and kept; later calls return the folder at once. The copy is written in a folder beside
its final place and renamed into it, so a folder under its digest is always complete.

transformers loads a GGUF only from a path ending in .gguf, and a blob has no extension: it is
read through a symlink named model.gguf in the work folder. A GGUF-loaded model carries a
quantizer marker that makes save_pretrained refuse it; the weights are plain float32 tensors by
then, so the marker is dropped before saving.

torch and transformers are imported inside hf_copy, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from llmasos.errors import InvalidRequestError, ModelFileError
from llmasos.models.default import DEFAULT_MODEL, canonical_model_name, ensure_default_model
from llmasos.models.repository import Repository

logger = logging.getLogger(__name__)

FOLDER = "hf"
GGUF_LINK = "model.gguf"


def hf_copy(repository: Repository, name: str) -> Path:
    """The folder of the Hugging Face copy of model `name` (made on the first call for its
    blob, and kept). InvalidRequestError for an adapter; ModelFileError when transformers
    cannot read the model."""
    canonical = canonical_model_name(name)
    if canonical == DEFAULT_MODEL:
        ensure_default_model(repository)
    manifest = repository.show(canonical)
    if manifest.base is not None:
        raise InvalidRequestError(
            "model", f"{canonical} is a LoRA adapter over {manifest.base}; train on a base model"
        )
    digest = manifest.digest.removeprefix("sha256:")
    folder = repository.root / FOLDER
    target = folder / digest
    if target.is_dir():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / f"{digest}.lock"):
        if target.is_dir():  # another process made it while this one waited
            return target
        for stale in folder.glob(f".{digest}.partial-*"):  # a conversion that died
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(dir=folder, prefix=f".{digest}.partial-"))
        try:
            logger.info("making a Hugging Face copy of %s (once, about 2 minutes)", canonical)
            out = _convert(repository.blob_path(manifest), work, canonical)
            os.replace(out, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _convert(blob: Path, work: Path, label: str) -> Path:
    """Load the GGUF `blob` with transformers and save it under `work`; return that folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = work / "source"
    source.mkdir()
    (source / GGUF_LINK).symlink_to(blob)
    out = work / "out"
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_LINK)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_LINK)
    except (ValueError, KeyError, OSError, RuntimeError, NotImplementedError) as error:
        raise ModelFileError(
            label, f"cannot be loaded by transformers for training ({error})"
        ) from error
    model.hf_quantizer = None  # the weights are dequantised float32 by now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = label
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
