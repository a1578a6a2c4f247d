"""The dashboard: how long its processes page takes to load with 50 live processes, and what
watching costs the server, with the dashboard closed against open (1 and 4 tabs) in the same
run, in the distribution's headless chromium driven by Playwright.

Two loads, each measured closed, then with 1 and with 4 tabs on the processes page:
- idle: 50 live processes, all suspended: the server's CPU seconds per wall second is then
  mostly the cost of the snapshots the open tabs are sent;
- busy: 50 processes generating (16 at a time): generated tokens per second, the work the
  watching must not slow.
Each is the mean of 3 rounds in which the three settings take turns, 20 s each. Page load:
from navigation until the table shows all 50 rows, median of 5 loads.

    .venv/bin/python bench/dashboard.py [--seconds 20] [--rounds 3]
Writes bench/results/dashboard.json and .png.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from report import arguments

PROCESSES, SLOTS, THREADS = 50, 16, 2
WATCHERS = (0, 1, 4)  # open tabs
TICKS = os.sysconf("SC_CLK_TCK")


def server_pid(url: str) -> int:
    """The pid of the `llmasos serve` listening on `url`'s port."""
    port = url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in words and port.encode() in words:
            return int(entry.name)
    raise SystemExit(f"no server process listens on {url}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def spawn_all(url: str, *, suspended: bool) -> list[int]:
    pids = []
    for n in range(PROCESSES):
        body = {
            "prompt": f"Story {n}: once upon a time",
            "max_tokens": 600 if suspended else 400,
        }
        reply = httpx.post(f"{url}/v1/processes", json=body, timeout=60)
        if reply.status_code != 201:
            raise SystemExit(f"process {n} was refused: {reply.text}")
        pid = reply.json()["pid"]
        if suspended:
            httpx.post(f"{url}/v1/processes/{pid}/signal", json={"signal": "suspend"}, timeout=60)
        pids.append(pid)
    return pids


def kill_all(url: str, pids: list[int]) -> None:
    for pid in pids:
        httpx.post(f"{url}/v1/processes/{pid}/signal", json={"signal": "kill"}, timeout=60)


def generated(url: str) -> int:
    return int(httpx.get(f"{url}/v1/stats", timeout=60).json()["generated_tokens"])


@contextmanager
def tabs(browser, url: str, count: int) -> Iterator[None]:
    contexts = []
    for _ in range(count):
        context = browser.new_context()
        page = context.new_page()
        page.goto(url + "/")
        page.wait_for_selector("table[aria-label=Processes] tbody tr")
        contexts.append(context)
    try:
        yield
    finally:
        for context in contexts:
            context.close()


def page_load_s(browser, url: str, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        context = browser.new_context()
        page = context.new_page()
        began = time.perf_counter()
        page.goto(url + "/")
        rows = "document.querySelectorAll('table[aria-label=Processes] tbody tr').length"
        page.wait_for_function(f"{rows} >= {PROCESSES}")
        times.append(time.perf_counter() - began)
        context.close()
    return statistics.median(times)


def measure(
    browser, url: str, seconds: float, rounds: int, *, suspended: bool
) -> dict[str, dict[str, float]]:
    """Per watcher count, the mean over `rounds` (the counts taking turns): CPU seconds per
    second (idle) and tokens per second (busy)."""
    pid, samples = server_pid(url), {w: [] for w in WATCHERS}
    for _ in range(rounds):
        for watchers in WATCHERS:
            pids = spawn_all(url, suspended=suspended)
            with tabs(browser, url, watchers):
                time.sleep(2)  # the tabs' first snapshots
                cpu, tokens, began = cpu_seconds(pid), generated(url), time.perf_counter()
                time.sleep(seconds)
                wall = time.perf_counter() - began
                samples[watchers].append(
                    ((cpu_seconds(pid) - cpu) / wall, (generated(url) - tokens) / wall)
                )
            kill_all(url, pids)
    return {
        f"{w} tabs": {
            "server_cpu_per_s": round(statistics.mean(c for c, _ in rows), 4),
            "tokens_per_s": round(statistics.mean(t for _, t in rows), 2),
        }
        for w, rows in samples.items()
    }


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    report = report_header("dashboard", __doc__.split("\n\n")[1], model)
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed: apt-get install chromium")
    with (
        sync_playwright() as driver,
        llmasos_server(
            slots=SLOTS, context=1024, threads=THREADS, extra=("--max-running", str(SLOTS))
        ) as url,
    ):
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        pids = spawn_all(url, suspended=True)
        report["page_load_s"] = round(page_load_s(browser, url), 3)
        kill_all(url, pids)
        report["idle"] = measure(browser, url, args.seconds, args.rounds, suspended=True)
        report["busy"] = measure(browser, url, args.seconds, args.rounds, suspended=False)
        browser.close()
    closed_cpu = report["idle"]["0 tabs"]["server_cpu_per_s"]
    closed_tokens = report["busy"]["0 tabs"]["tokens_per_s"]
    report["ratios"] = {
        tabs_open: {
            "idle_cpu_vs_closed": round(row["server_cpu_per_s"] / max(closed_cpu, 1e-3), 2),
            "busy_tokens_vs_closed": round(
                report["busy"][tabs_open]["tokens_per_s"] / closed_tokens, 3
            ),
        }
        for tabs_open, row in report["idle"].items()
    }
    write_report(args.out / "dashboard.json", report)
    groups = list(report["idle"])
    bar_plot(
        args.out / "dashboard.png",
        groups=groups,
        series={
            "idle: server CPU s/s": [report["idle"][g]["server_cpu_per_s"] for g in groups],
            "busy: tokens/s ÷ 100": [report["busy"][g]["tokens_per_s"] / 100 for g in groups],
        },
        title=f"The cost of watching {PROCESSES} live processes (page load "
        f"{report['page_load_s']:.2f} s)",
    )
    print(report["page_load_s"], report["ratios"])


if __name__ == "__main__":
    main()
