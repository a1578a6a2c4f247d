"""Start and stop the servers a benchmark compares: `llmasos serve` and llama.cpp's own
`llama-server`, built from the same llama-cpp-python sdist by
../shared/tools/build-reference-llama."""

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

from report import REPO

BUILD_REFERENCE = REPO.parent / "shared" / "tools" / "build-reference-llama"
Q8_0_KV = ("-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on")  # llama-server with our K/V settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference_bin() -> Path:
    """The folder of llama-server & co., built (and cached) on first use: about 10 minutes."""
    if not BUILD_REFERENCE.exists():
        raise SystemExit(f"{BUILD_REFERENCE} is missing: it builds llama.cpp's own llama-server")
    out = subprocess.run(
        [str(BUILD_REFERENCE)], cwd=REPO, check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


@contextmanager
def running(
    command: list[str], health_url: str, log_name: str, env: dict[str, str] | None = None
) -> Iterator[None]:
    log_path = Path("/tmp") / f"llmasos-bench-{log_name}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"{log_name} exited; see {log_path}")
                try:
                    if httpx.get(health_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{log_name} did not start; see {log_path}")
                time.sleep(0.3)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def llmasos_server(
    *,
    slots: int,
    context: int,
    threads: int,
    extra: tuple[str, ...] = (),
    home: Path | None = None,
    name: str = "llmasos",
) -> Iterator[str]:
    """`llmasos serve` on a free port, with `home` as its LLMASOS_HOME if given; `name` names
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
        "--threads",
        str(threads),
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if k != "LLMASOS_API_KEYS"}
    if home is not None:
        env["LLMASOS_HOME"] = str(home)
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/health", name, env):
        yield url


@contextmanager
def llama_server(
    model: Path, *, slots: int, context: int, threads: int, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    port = free_port()
    command = [
        str(reference_bin() / "llama-server"),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-t",
        str(threads),
        "-tb",
        str(threads),
        "-np",
        str(slots),
        "-c",
        str(slots * context),
        "-b",
        "512",
        "-ub",
        "512",
        "--no-webui",
        *extra,
    ]
    url = f"http://127.0.0.1:{port}"
    with running(command, f"{url}/health", "llama-server"):
        yield url
