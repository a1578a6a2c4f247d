"""kill -9 of the server during a burst of writes: after a restart every acknowledged write is
there, byte for byte, and the books agree (each path's head is its newest version, versions
run 1..n without a gap)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from llmasos.models.repository import Repository
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.integration.test_server import start_server, stop_server

WRITERS = 4
BURST_S = 1.5


def _serve(home: Path, log: Path) -> tuple:
    return start_server("--model", "tiny", "--num-slots", "2", "--max-running", "2",
                        home=home, log=log)  # fmt: skip


def _write_until_stopped(url: str, writer: int, stop: threading.Event, acked: dict) -> None:
    """Write versions of one path, each with the version it follows; record what the server
    acknowledged. The kill ends this with a connection error."""
    path, version = f"burst/writer-{writer}.txt", 0
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set():
            content = f"writer {writer} version {version + 1} ".encode() * 20
            try:
                reply = http.put(
                    f"/v1/fs/files/{path}", content=content,
                    params={"expected_version": version},
                )  # fmt: skip
            except httpx.HTTPError:
                return
            assert reply.status_code == 200, reply.text
            version = reply.json()["version"]
            acked[(path, version)] = content


def test_every_acknowledged_write_survives_a_kill_9(backend, llmasos_home, tmp_path, monkeypatch):
    Repository(llmasos_home / "models").import_file(write_tiny_gguf(tmp_path / "t.gguf"), "tiny")
    monkeypatch.setenv("LLMASOS_HOME", str(llmasos_home))
    if backend.url is not None:
        monkeypatch.setenv("LLMASOS_DATABASE_URL", backend.url)
    else:
        backend.data_dir = llmasos_home / "storage"  # where the server keeps its shards
    server, url = _serve(llmasos_home, tmp_path / "first.log")
    acked: dict[tuple[str, int], bytes] = {}
    stop = threading.Event()
    writers = [
        threading.Thread(target=_write_until_stopped, args=(url, n, stop, acked))
        for n in range(WRITERS)
    ]
    try:
        for thread in writers:
            thread.start()
        time.sleep(BURST_S)
        server.kill()  # SIGKILL, mid-burst
        server.wait(timeout=30)
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=30)
        if server.poll() is None:
            server.kill()
    assert len(acked) > WRITERS  # the burst did write

    server, url = _serve(llmasos_home, tmp_path / "second.log")
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            for (path, version), content in acked.items():
                reply = http.get(f"/v1/fs/files/{path}", params={"version": version})
                assert reply.status_code == 200, (path, version, reply.text)
                assert reply.content == content
            for writer in range(WRITERS):
                path = f"burst/writer-{writer}.txt"
                history = http.get(f"/v1/fs/history/{path}").json()["data"]
                versions = [row["version"] for row in history]
                assert versions == list(range(1, len(versions) + 1))
                newest_acked = max(v for (p, v) in acked if p == path)
                # at most the one write in flight at the kill committed unacknowledged
                assert newest_acked <= len(versions) <= newest_acked + 1
                head = http.get(f"/v1/fs/stat/{path}").json()
                assert head["version"] == versions[-1]
    finally:
        stop_server(server)
    heads = backend.execute(
        "SELECT count(*) FROM file_heads h WHERE h.version <> (SELECT max(v.version) FROM "
        "file_versions v WHERE v.namespace = h.namespace AND v.path = h.path)"
    )
    assert heads == [(0,)]
    if backend.url is None:
        assert backend.execute("PRAGMA integrity_check") == [("ok",)]
