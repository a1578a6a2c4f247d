"""The container image: what the Dockerfile installs (a non-editable install of this checkout)
carries every module and the dashboard's files, and, where a Docker daemon answers, the image
builds and serves a completion."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_server import free_port

REPO = Path(__file__).resolve().parents[2]


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def test_the_installed_package_has_every_module_and_the_dashboard(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        check=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    installed = target / "llmasos"
    source = REPO / "src" / "llmasos"
    modules = {p.relative_to(source) for p in source.rglob("*.py")}
    assert modules <= {p.relative_to(installed) for p in installed.rglob("*.py")}
    shipped = [p for p in (source / "server" / "dashboard").rglob("*") if p.is_file()]
    assert shipped
    for path in shipped:
        assert (installed / path.relative_to(source)).read_bytes() == path.read_bytes()


@pytest.mark.skipif(not docker_answers(), reason="no Docker daemon answers here (docker info)")
@pytest.mark.timeout(3600)
def test_the_image_builds_and_serves_a_completion():
    tag = "llmasos:test"
    subprocess.run(["docker", "build", "-t", tag, str(REPO)], check=True, timeout=3000)
    port = free_port()
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8000", tag],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while not _healthy(url):
            assert time.monotonic() < deadline, "the container never answered /health"
            time.sleep(1)
        body = {"prompt": "The capital of France is", "max_tokens": 4, "temperature": 0}
        reply = httpx.post(f"{url}/v1/completions", json=body, timeout=120)
        assert reply.status_code == 200
        assert reply.json()["usage"]["completion_tokens"] >= 1
    finally:
        subprocess.run(["docker", "stop", container], capture_output=True, check=False)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).is_success
    except httpx.HTTPError:
        return False
