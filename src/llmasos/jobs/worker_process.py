"""A job's worker process as its manager sees it: what it inherits, how it gets the master key,
whether it still runs (for any manager on the home) and what its log says last."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from llmasos.jobs.job_files import TaskFiles
from llmasos.jobs.pool_address import POOL_ENVIRONMENT


def hand_over(process: subprocess.Popen[bytes], master_key: bytes) -> None:
    """Give the worker the master key on its stdin (a pipe: not in /proc's environ or cmdline)."""
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError):  # it died already: its exit status says so
        process.stdin.write(master_key)
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()


def worker_environment(home: Path) -> dict[str, str]:
    """What a worker inherits: no keys or secrets of the server, no network for libraries."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", *POOL_ENVIRONMENT)
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith(("LC_", "OMP_"))}
    return {**env, "LLMASOS_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def live_worker_pid(files: TaskFiles) -> int | None:
    """The pid of the worker (of any manager) still running this job, if there is one."""
    try:
        pid = int((files.folder / "worker.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except (OSError, ValueError):
        return None
    return pid if str(files.folder) in cmdline else None


def signal_worker_of(files: TaskFiles) -> None:
    """SIGTERM to the worker another manager runs for this job, if that pid is still it."""
    pid = live_worker_pid(files)
    if pid is not None:
        with contextlib.suppress(OSError):  # gone: its runner's recovery ends it as asked
            os.kill(pid, signal.SIGTERM)


def log_tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "no log"
