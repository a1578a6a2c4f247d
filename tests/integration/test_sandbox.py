"""The sandbox and the python tool, for real: bubblewrap and rlimits on this machine."""

from __future__ import annotations

import subprocess

import pytest

from llmasos.tools.builtins import executable_tool, python_tool
from llmasos.tools.registry import ToolRegistry
from llmasos.tools.sandbox import SandboxLimits, run_sandboxed, sandbox_problem

pytestmark = pytest.mark.skipif(sandbox_problem() is not None, reason=str(sandbox_problem()))

LIMITS = SandboxLimits(cpu_s=2, wall_s=5, memory_bytes=256 * 1024**2)


@pytest.fixture(scope="module")
def tools():
    return ToolRegistry([python_tool(LIMITS)])


def run(tools, code):
    return tools.call("python", {"code": code})


def test_a_program_runs_and_its_stdout_is_the_result(tools):
    result = run(tools, "import sys; print(sum(range(10))); print(sys.flags.isolated)")
    assert result.ok and result.value == "45\n1\n"


@pytest.mark.parametrize(
    ("code", "limit"),
    [
        ("while True: pass", "cpu time (2 s)"),
        ("import time; time.sleep(60)", "wall time (5 s)"),
        ("x = bytearray(2 * 1024**3)", "memory"),
        ("x = []\nwhile True: x.append(' ' * 10**6)", "memory"),
        ("print('y' * 10**6)", "output (65536 bytes)"),
        ("open('big', 'wb').write(b'0' * 32 * 1024**2)", "file size"),
    ],
)
def test_a_runaway_program_is_stopped_at_its_limit_with_an_error_result(tools, code, limit):
    result = run(tools, code)
    assert not result.ok and limit in result.error, result.error


def test_no_network_and_no_writes_outside_the_scratch_directory(tools):
    network = run(tools, "import socket; socket.create_connection(('1.1.1.1', 80), timeout=3)")
    outside = run(tools, "open('/root/evil', 'w')")
    tmp = run(tools, "import pathlib; pathlib.Path('/tmp/x').write_text('t'); print('ok')")
    scratch = run(tools, "open('notes.txt', 'w').write('hi'); print(open('notes.txt').read())")
    assert not network.ok and "Network is unreachable" in network.error
    assert not outside.ok and "Read-only file system" in outside.error
    assert tmp.ok  # a private /tmp, gone afterwards
    assert scratch.ok and scratch.value == "hi\n"


def test_processes_the_program_starts_die_with_it():
    code = "import subprocess, time; subprocess.Popen(['sleep', '600']); time.sleep(60)"
    result = run_sandboxed(["python3", "-c", code], limits=SandboxLimits(wall_s=1))
    assert result.limit == "wall time (1 s)"
    leftover = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, check=False)
    assert leftover.stdout == b""


def test_a_program_registered_as_a_tool_reads_its_arguments_and_runs_sandboxed():
    doubler = "import json, sys; print(json.load(sys.stdin)['x'] * 2)"
    tools = ToolRegistry(
        [
            executable_tool("double", ["python3", "-c", doubler], limits=LIMITS),
            executable_tool("fails", ["sh", "-c", "echo broken >&2; exit 3"], limits=LIMITS),
            executable_tool("peek", ["cat", "/proc/net/dev"], limits=LIMITS),
        ]
    )
    assert tools.call("double", {"x": 21}).value == "42\n"
    failed = tools.call("fails", {})
    assert not failed.ok and failed.error == "exit code 3: broken"
    interfaces = tools.call("peek", {}).value
    assert "lo:" in interfaces and "eth" not in interfaces  # only its own loopback


def test_a_program_that_lives_under_tmp_still_runs(tmp_path):
    program = tmp_path / "bin" / "hello"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho hello from $0\n")
    program.chmod(0o755)
    result = run_sandboxed([str(program)], limits=LIMITS)
    assert result.ok and result.stdout == f"hello from {program}\n", result.stderr
