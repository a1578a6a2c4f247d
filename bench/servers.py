"""Start and stop the servers a benchmark compares: `llmasos serve` (llmasos.benchmark.local_server)
and llama.cpp's own `llama-server`, built from the same llama-cpp-python sdist by
../shared/tools/build-reference-llama."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from llmasos.benchmark.local_server import free_port, running
from report import REPO

BUILD_REFERENCE = REPO.parent / "shared" / "tools" / "build-reference-llama"
Q8_0_KV = ("-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on")  # llama-server with our K/V settings


def reference_bin() -> Path:
    """The folder of llama-server & co., built (and cached) on first use: about 10 minutes."""
    if not BUILD_REFERENCE.exists():
        raise SystemExit(f"{BUILD_REFERENCE} is missing: it builds llama.cpp's own llama-server")
    out = subprocess.run(
        [str(BUILD_REFERENCE)], cwd=REPO, check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


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
