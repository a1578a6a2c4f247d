"""The model repository: content-addressed GGUF blobs and name:tag manifests on disk.

    $LLMASOS_HOME/models/
        blobs/sha256-<hex>            model files, stored once however many names point at them
        manifests/<name>/<tag>.json   what a name means: its blob and the GGUF's own metadata
        tmp/                          imports in progress (cleared when the repository opens)

An import writes to tmp/, checks the file (a complete GGUF, the expected sha256), moves it into
blobs/ and only then writes the manifest, each step by an atomic rename. An import that fails
or is interrupted leaves no new name and no new blob behind.

A LoRA adapter (a GGUF of general.type "adapter") is imported over a base model with
import_adapter: its manifest names the base, carries the base's architecture, context length,
chat template and KV size, and counts both files in size_bytes (loading it loads the base and
applies the adapter). A base model cannot be removed while adapters name it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO

from llmasos.errors import (
    InvalidRequestError,
    ModelError,
    ModelExistsError,
    ModelFileError,
    ModelInUseError,
    UnknownModelError,
)
from llmasos.models.gguf_info import is_encoder, read_gguf_info
from llmasos.models.manifest import Manifest, full_name, parse_name

CHUNK_BYTES = 1 << 20

# bytes copied so far, total bytes if known
Progress = Callable[[int, int | None], None]
UNREADABLE = "\0unreadable"  # the owner of a model whose manifest cannot be read: no one
# (name, digest, the imported file, source label) -> the manifest to write (or a refusal)
Describe = Callable[[str, str, Path, str], "Manifest"]


@dataclass(frozen=True)
class ModelFiles:
    """What an engine loads for a model: a GGUF, and a LoRA adapter to apply to it, if any."""

    model: Path
    adapter: Path | None = None


class Repository:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.manifests = root / "manifests"
        self.tmp = root / "tmp"
        for folder in (self.blobs, self.manifests, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # an import that died half way
            _remove_unless_in_use(leftover)

    # -- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(f"{p.parent.name}:{p.stem}" for p in self.manifests.glob("*/*.json"))

    def list(self) -> list[Manifest]:
        return [self.show(name) for name in self.names()]

    def show(self, name: str) -> Manifest:
        path = self._manifest_path(name)
        if not path.is_file():
            raise self.unknown(name)
        return Manifest(**json.loads(path.read_text()))

    def unknown(self, name: str) -> UnknownModelError:
        """The error for a name that names no model: it lists the shared models only."""
        return UnknownModelError(name, [n for n in self.names() if self.owner_of(n) is None])

    def owner_of(self, name: str) -> str | None:
        """The owner of private model `name`; None for a shared model or an unknown name (a
        manifest that cannot be read is private to no one)."""
        try:
            path = self._manifest_path(name)
        except (InvalidRequestError, ValueError):
            return None
        try:
            return json.loads(path.read_text()).get("owner") if path.is_file() else None
        except (OSError, ValueError, AttributeError):
            return UNREADABLE

    def __contains__(self, name: str) -> bool:
        return self._manifest_path(name).is_file()

    def blob_path(self, manifest: Manifest) -> Path:
        return self.blobs / manifest.digest.replace(":", "-")

    def model_files(self, manifest: Manifest) -> ModelFiles:
        """The files an engine loads for `manifest`: an adapter's base blob and its own."""
        if manifest.base is None:
            return ModelFiles(self.blob_path(manifest))
        return ModelFiles(self.blob_path(self.show(manifest.base)), self.blob_path(manifest))

    def adapters_of(self, name: str) -> list[str]:
        """The adapters built on the model `name`."""
        canonical = full_name(name)
        return [m.name for m in self.list() if m.base == canonical]

    # -- changing --------------------------------------------------------------------------

    def import_file(
        self,
        path: Path,
        name: str,
        *,
        sha256: str | None = None,
        progress: Progress | None = None,
        source_label: str | None = None,
    ) -> Manifest:
        """Copy a GGUF file into the repository under `name`."""
        if not path.is_file():
            raise ModelFileError(path, "does not exist or is not a file")
        with path.open("rb") as source:
            return self.import_stream(
                source,
                name,
                source_label=source_label or str(path),
                sha256=sha256,
                total=path.stat().st_size,
                progress=progress,
            )

    def import_stream(
        self,
        stream: BinaryIO | Iterator[bytes],
        name: str,
        *,
        source_label: str,
        sha256: str | None = None,
        total: int | None = None,
        progress: Progress | None = None,
    ) -> Manifest:
        """Import bytes from `stream` (a binary file or an iterator of chunks)."""
        return self._import(stream, name, source_label, sha256, total, progress, _as_gguf)

    def import_described(self, path: Path, name: str, describe: Describe) -> Manifest:
        """Copy a file of another format (a speech model) in; `describe` checks and names it."""
        with path.open("rb") as source:
            total = path.stat().st_size
            return self._import(source, name, str(path), None, total, None, describe)

    def import_adapter(
        self, path: Path, name: str, base: str, owner: str | None = None
    ) -> Manifest:
        """Copy the GGUF LoRA adapter at `path` into the repository under `name`, as a model
        that runs `base` (a model of the same architecture, not itself an adapter) with the
        adapter applied; with `owner`, a model private to that owner."""
        base_manifest = self.show(full_name(base))
        if base_manifest.base is not None:
            raise InvalidRequestError(
                "base", f"{base_manifest.name} is itself an adapter; name its base model"
            )
        if is_encoder(base_manifest.architecture):
            raise InvalidRequestError(
                "base", f"{base_manifest.name} is an embedding model; adapters need a generator"
            )
        if not path.is_file():
            raise ModelFileError(path, "does not exist or is not a file")

        def describe(canonical: str, digest: str, file: Path, label: str) -> Manifest:
            info = read_gguf_info(file)
            return replace(
                Manifest.of_adapter(canonical, digest, info, label, base_manifest), owner=owner
            )

        return self.import_described(path, name, describe)

    def _import(
        self,
        stream: BinaryIO | Iterator[bytes],
        name: str,
        source_label: str,
        sha256: str | None,
        total: int | None,
        progress: Progress | None,
        describe: Describe,
    ) -> Manifest:
        canonical = full_name(name)
        self._refuse_taken(canonical)
        expected = _expected_digest(sha256)
        fd, temp_name = tempfile.mkstemp(dir=self.tmp, suffix=".partial")
        fcntl.flock(fd, fcntl.LOCK_EX)  # in use: another Repository on this folder keeps it
        temp = Path(temp_name)
        try:
            digest = _copy_hashing(stream, fd, total, progress)
            if expected is not None and digest != expected:
                raise ModelFileError(
                    source_label, f"has sha256 {digest}, not the expected {expected}"
                )
            manifest = describe(canonical, f"sha256:{digest}", temp, source_label)
            blob = self.blob_path(manifest)
            new_blob = not blob.exists()
            if new_blob:
                os.replace(temp, blob)
            try:
                self._write_manifest(manifest)
            except BaseException:
                if new_blob and not self._referenced(manifest.digest):
                    blob.unlink(missing_ok=True)
                raise
            return manifest
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise ModelError(
                    f"source: {source_label}: the disk is full; free some space and import again"
                ) from error
            raise ModelFileError(source_label, f"could not be imported ({error})") from error
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
            temp.unlink(missing_ok=True)

    def tag(self, source: str, target: str) -> Manifest:
        """Give the model `source` a second name."""
        manifest = self.show(full_name(source))
        canonical = full_name(target)
        self._refuse_taken(canonical)
        tagged = Manifest(**{**asdict(manifest), "name": canonical})
        self._write_manifest(tagged)
        return tagged

    def remove(self, name: str) -> Manifest:
        """Forget `name`; its blob goes too when no other name uses it. ModelInUseError while
        adapters are built on it."""
        manifest = self.show(full_name(name))
        self.check_removable(manifest.name)
        path = self._manifest_path(manifest.name)
        path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # only when it was the last tag of this name
        if not self._referenced(manifest.digest):
            self.blob_path(manifest).unlink(missing_ok=True)
        return manifest

    def check_removable(self, name: str) -> None:
        """ModelInUseError if adapters are built on the model `name`."""
        adapters = self.adapters_of(name)
        if adapters:
            raise ModelInUseError(full_name(name), adapters)

    # -- internals -------------------------------------------------------------------------

    def _manifest_path(self, name: str) -> Path:
        base, tag = parse_name(name)
        return self.manifests / base / f"{tag}.json"

    def _refuse_taken(self, name: str) -> None:
        if name in self:
            raise ModelExistsError(name)

    def _referenced(self, digest: str) -> bool:
        return any(m.digest == digest for m in self.list())

    def _write_manifest(self, manifest: Manifest) -> None:
        path = self._manifest_path(manifest.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.tmp, suffix=".json")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with os.fdopen(fd, "w") as file:
                json.dump(asdict(manifest), file, indent=2)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)


def _as_gguf(name: str, digest: str, file: Path, source: str) -> Manifest:
    return Manifest.of(name, digest, read_gguf_info(file), source)


def _remove_unless_in_use(path: Path) -> None:
    """Delete a temporary file no import holds (each holds its own under a file lock while it
    writes: a server, a job's worker and the CLI may open one repository at once)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
        except BlockingIOError:
            return
        finally:
            os.close(fd)


def _expected_digest(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    digest = sha256.lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InvalidRequestError("sha256", "must be 64 hexadecimal digits")
    return digest


def _copy_hashing(
    stream: BinaryIO | Iterator[bytes], fd: int, total: int | None, progress: Progress | None
) -> str:
    digest = hashlib.sha256()
    done = 0
    chunks = iter(lambda: stream.read(CHUNK_BYTES), b"") if hasattr(stream, "read") else stream
    for chunk in chunks:
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
        done += len(chunk)
        if progress is not None:
            progress(done, total)
    os.fsync(fd)
    return digest.hexdigest()
