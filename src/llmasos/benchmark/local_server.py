"""Start and stop a server a benchmark measures: a command that serves HTTP on a free port.

`llmasos_server` is `llmasos serve` with the embedded kernel and the default model; benchmark
scripts start llama.cpp's own `llama-server` through `running` as well.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(
    command: list[str], health_url: str, log_name: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run `command` until `health_url` answers 200, and stop it on exit; its output goes to
    /tmp/llmasos-bench-LOG_NAME.log, named in the error when it does not start."""
    log_path = Path("/tmp") / f"llmasos-bench-{log_name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_healthy(process, health_url, log_name, log_path)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(
    process: subprocess.Popen, health_url: str, log_name: str, log_path: Path
) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{log_name} exited; see {log_path}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{log_name} did not start in {START_TIMEOUT_S} s; see {log_path}")
        time.sleep(0.3)


@contextmanager
def llmasos_server(
    *,
    slots: int,
    context: int,
    threads: int | None,
    extra: tuple[str, ...] = (),
    home: Path | None = None,
    name: str = "llmasos",
) -> Iterator[str]:
    """`llmasos serve` on a free port (`threads` None: its own default), with `home` as its
    LLMASOS_HOME if given; `name` names
    its log (/tmp/llmasos-bench-NAME.log), so that servers running side by side keep theirs."""
    port = free_port()
    exe = shutil.which("llmasos", path=str(Path(sys.executable).parent)) or "llmasos"
    command = [
        exe,
        "serve",
        "--port",
        str(port),
        "--num-slots",
        str(slots),
        "--max-running",
        str(slots),
        "--context-length",
        str(context),
        "--max-batch-tokens",
        "512",
        *(("--threads", str(threads)) if threads else ()),
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if k != "LLMASOS_API_KEYS"}
    if home is not None:
        env["LLMASOS_HOME"] = str(home)
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/health", name, env):
        yield url
