"""The CPU a training job gets while interactive work runs.

SCHED_IDLE alone leaves a job every core the engine does not use, and on a small machine the
job's memory traffic then slows the engine's own steps. So while `busy()` says interactive work
runs (a process of priority >= 0 is live), the job's worker is paused (SIGSTOP) but for `share`
of each period; it runs freely again (SIGCONT) when the engine is idle. A share of 0 (the
default) pauses it whenever interactive work runs; 1 never pauses it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from llmasos.errors import InvalidRequestError

TICK_S = 0.02  # how soon a paused job notices the engine went idle (and the reverse)
PERIOD_S = 1.0  # the cycle over which a share is given


def check_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise InvalidRequestError("job_cpu_share", f"must be between 0 and 1, got {share!r}")
    return float(share)


class Throttle:
    """Pauses and resumes the running job's worker; one thread, started with the first job."""

    def __init__(self, busy: Callable[[], bool], share: float = 0.0) -> None:
        self.busy = busy
        self.share = check_share(share)
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def watch(self, process: subprocess.Popen[bytes] | None) -> None:
        """Throttle `process` from now on (None: no job runs; a paused one is resumed)."""
        with self._lock:
            self._set_paused(False)
            self._process = process
        if process is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llmasos-throttle", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self.watch(None)
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            pause = self._should_pause(time.monotonic())
            with self._lock:
                if self._process is not None:
                    self._set_paused(pause)

    def _should_pause(self, now: float) -> bool:
        if self.share >= 1 or not self.busy():
            return False
        return (now % PERIOD_S) >= self.share * PERIOD_S

    def _set_paused(self, pause: bool) -> None:
        if self._process is None or pause == self._paused:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGSTOP if pause else signal.SIGCONT)
        self._paused = pause
