"""Every test runs with a temporary LLMASOS_HOME: never the user's ~/.llmasos.

The session gets one home (module-scoped fixtures such as servers use it); each test then gets
its own, set in the environment, so subprocesses (the CLI, servers) inherit it. Tests under
tests/integration/ carry the `integration` marker. A run that hangs stops after SUITE_LIMIT_S.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from pathlib import Path

import pytest

# pytest-timeout fails a test that runs past 300 s, but a test whose teardown then blocks (a
# thread joined forever) would hang the run until CI's own limit. Past this, the whole run stops
# with every thread's stack printed, so the log shows where it hung.
SUITE_LIMIT_S = float(os.environ.get("LLMASOS_SUITE_LIMIT_S", 45 * 60))


def pytest_configure(config: pytest.Config) -> None:
    stderr = os.dup(sys.stderr.fileno())  # the terminal's, before tests capture fd 2
    faulthandler.dump_traceback_later(SUITE_LIMIT_S, exit=True, file=stderr)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("llmasos-home")
    previous = os.environ.get("LLMASOS_HOME")
    os.environ["LLMASOS_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("LLMASOS_HOME", None)
    else:
        os.environ["LLMASOS_HOME"] = previous


@pytest.fixture(autouse=True)
def llmasos_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")  # beside the test's tmp_path, not inside it
    monkeypatch.setenv("LLMASOS_HOME", str(home))
    return home
