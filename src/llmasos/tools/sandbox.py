"""Runs a command in a sandbox: a separate process with CPU-time, memory, file-size and
wall-time limits, no network, a read-only view of the machine and one writable scratch
directory (a fresh temporary directory, removed afterwards).

Linux only. The jail is Debian's bubblewrap (`bwrap`: new user, network, IPC, PID and UTS
namespaces, the root file system bound read-only, a private /tmp, the scratch directory bound
writable as /tmp/scratch, the working directory; a program that itself lives under /tmp is
bound read-only where it is) and the limits are rlimits set by `prlimit`
(util-linux) around it, so they hold in every process the command starts. Wall time is kept
here: past it the whole process group is killed. Without bwrap nothing runs: sandbox_problem()
says why, and run_sandboxed raises SandboxUnavailableError (`make test` installs bubblewrap).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from llmasos.errors import InvalidRequestError, SandboxUnavailableError

SCRATCH = "/tmp/scratch"  # the command's working directory, inside the sandbox


@dataclass(frozen=True)
class SandboxLimits:
    cpu_s: int = 5
    memory_bytes: int = 512 * 1024**2  # address space
    wall_s: float = 10.0
    file_bytes: int = 16 * 1024**2  # any one file written, stdout and stderr included
    output_bytes: int = 64 * 1024  # stdout or stderr handed back

    def __post_init__(self) -> None:
        for name, low, high in (
            ("cpu_s", 1, 3600),
            ("memory_bytes", 16 * 1024**2, 64 * 1024**3),
            ("wall_s", 0.1, 3600),
            ("file_bytes", 1024, 1024**3),
            ("output_bytes", 1024, 16 * 1024**2),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise InvalidRequestError(f"limits.{name}", f"must be {low} to {high}, got {value}")


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int  # negative: killed by that signal
    stdout: str
    stderr: str
    limit: str | None  # the limit the command hit ("cpu time", "memory", ...), if any
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None


def sandbox_problem() -> str | None:
    """Why commands cannot be sandboxed here, or None when they can."""
    if os.name != "posix" or not Path("/proc/self/ns/user").exists():
        return "sandboxed tools need Linux namespaces"
    for tool, package in (("bwrap", "bubblewrap"), ("prlimit", "util-linux")):
        if shutil.which(tool) is None:
            return f"sandboxed tools need `{tool}` (install the {package} package)"
    return None


def run_sandboxed(
    argv: list[str], *, stdin: str = "", limits: SandboxLimits, shown: tuple[str, ...] = ()
) -> SandboxResult:
    """Run `argv` in the sandbox with `stdin` as its input; its result, whatever it did.
    `shown`: folders under /tmp the command needs (an interpreter's prefix), bound read-only."""
    problem = sandbox_problem()
    if problem is not None:
        raise SandboxUnavailableError(problem)
    with tempfile.TemporaryDirectory(prefix="llmasos-sandbox-") as work:
        scratch = Path(work, "scratch")
        scratch.mkdir()
        streams = [Path(work, name) for name in ("stdin", "stdout", "stderr")]
        streams[0].write_text(stdin)
        started = time.monotonic()
        with (
            streams[0].open("rb") as fin,
            streams[1].open("wb") as out,
            streams[2].open("wb") as err,
        ):
            child = subprocess.Popen(
                _jail(argv, scratch, limits, shown),
                stdin=fin,
                stdout=out,
                stderr=err,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            )
            timed_out = _wait(child, limits.wall_s)
        duration = time.monotonic() - started
        stdout, stdout_over = _read(streams[1], limits.output_bytes)
        stderr, _ = _read(streams[2], limits.output_bytes)
    limit = _limit_hit(child.returncode, timed_out, stdout_over, stderr, limits)
    return SandboxResult(child.returncode, stdout, stderr, limit, duration)


def _jail(
    argv: list[str], scratch: Path, limits: SandboxLimits, shown: tuple[str, ...]
) -> list[str]:
    rlimits = [
        f"--cpu={limits.cpu_s}",
        f"--as={limits.memory_bytes}",
        f"--fsize={limits.file_bytes}",
        "--core=0",
    ]
    bwrap = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
    bwrap += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    bwrap += ["--bind", str(scratch), SCRATCH, "--chdir", SCRATCH, "--setenv", "HOME", SCRATCH]
    program = Path(os.path.realpath(shutil.which(argv[0]) or argv[0]))
    for folder in {str(program.parent), *shown}:  # under the private /tmp: shown read-only
        if Path(folder).is_relative_to("/tmp"):
            bwrap += ["--ro-bind", folder, folder]
    return ["prlimit", *rlimits, "--", *bwrap, "--", str(program), *argv[1:]]


def _wait(child: subprocess.Popen, wall_s: float) -> bool:
    """Wait for `child`; past wall_s kill its process group. True if it had to be killed."""
    try:
        child.wait(timeout=wall_s)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        return True


def _read(path: Path, limit: int) -> tuple[str, bool]:
    """The file's text (at most `limit` bytes) and whether it held more."""
    with path.open("rb") as file:
        data = file.read(limit + 1)
    return data[:limit].decode("utf-8", errors="replace"), len(data) > limit


def _limit_hit(
    code: int, timed_out: bool, output_over: bool, stderr: str, limits: SandboxLimits
) -> str | None:
    if timed_out:
        return f"wall time ({limits.wall_s} s)"
    if code in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return f"cpu time ({limits.cpu_s} s)"
    if code in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ) or "File too large" in stderr:
        return f"file size ({limits.file_bytes} bytes)"
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return f"memory ({limits.memory_bytes} bytes)"
    if output_over:
        return f"output ({limits.output_bytes} bytes)"
    return None
