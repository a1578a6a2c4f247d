"""A training job's worker is paused while interactive work runs and resumed when it ends."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmasos.errors import InvalidRequestError
from llmasos.jobs.throttle import TICK_S, Throttle, check_share
from tests.unit.test_kernel import wait_until


def state_of(process: subprocess.Popen) -> str:
    """The process's state letter in /proc: T when stopped, S or R otherwise."""
    return Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def worker():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_the_worker_is_paused_while_interactive_work_runs_and_resumed_after(worker):
    busy = [False]
    throttle = Throttle(lambda: busy[0], share=0.0)
    throttle.watch(worker)
    try:
        busy[0] = True
        wait_until(lambda: state_of(worker) == "T")
        busy[0] = False
        wait_until(lambda: state_of(worker) != "T")
        busy[0] = True
        wait_until(lambda: state_of(worker) == "T")
        throttle.watch(None)  # the job stops being throttled: it runs (to finish its step)
        assert state_of(worker) != "T"
    finally:
        throttle.close()


def test_a_full_share_never_pauses_the_worker(worker):
    throttle = Throttle(lambda: True, share=1.0)
    throttle.watch(worker)
    try:
        seen = set()
        for _ in range(20):  # over 20 of the throttle's ticks
            seen.add(state_of(worker))
            time.sleep(TICK_S)
        assert "T" not in seen
    finally:
        throttle.close()


@pytest.mark.parametrize("share", [-0.1, 1.5, True, "half"])
def test_a_share_outside_0_to_1_is_refused(share):
    with pytest.raises(InvalidRequestError, match="job_cpu_share"):
        check_share(share)
