"""What the soak reads of the server it loads: its pid, memory and access log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx

LIVE = ("new", "ready", "running", "swapped", "suspended", "waiting")


def server_pid(url: str) -> int:
    """The pid of the `llmasos serve` listening on `url`'s port."""
    port = str(urlsplit(url).port)
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "serve" in words and "--port" in words and words[words.index("--port") + 1] == port:
            return int(proc.name)
    raise SystemExit(f"no llmasos serve process listens on port {port}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise SystemExit(f"no VmRSS for pid {pid}")


async def snapshot(url: str, pid: int, home: Path | None = None) -> dict:
    """RSS, used KV pages and swap bytes (and, given the home, the swap files on disk)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        memory = (await http.get("/v1/memory")).json()
    figures = {
        "rss_mib": rss_mib(pid),
        "used_pages": memory["used_pages"],
        "swap_bytes": memory["swap_ram_bytes"] + memory["swap_disk_bytes"],
    }
    if home is not None:
        figures["swap_files"] = sum(1 for p in (home / "swap").rglob("*") if p.is_file())
    return figures


async def wait_idle(url: str, timeout: float = 300) -> None:
    """Until no process and no agent is live (then 2 s more, for the reaper)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(int(timeout)):
            processes = (await http.get("/v1/processes")).json()["data"]
            agents = (await http.get("/v1/agents")).json()["data"]
            if not agents and not [p for p in processes if p["state"] in LIVE]:
                await asyncio.sleep(2)
                return
            await asyncio.sleep(1)
    raise SystemExit(f"the server was still busy after {timeout} s")


def access_ids(log: Path) -> list[str]:
    """The request ids of the access lines in a JSON-lines server log."""
    ids = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("logger") == "llmasos.access":
                ids.append(record["request_id"])
    return ids
