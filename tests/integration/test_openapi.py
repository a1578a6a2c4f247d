"""Schemathesis over the whole API: every operation in /openapi.json, with every check it has
(status codes, response schemas, content types, headers, that what the schema accepts is
accepted and what it refuses is refused, stateful sequences along the document's links), and
ours: no response shows a stack trace or a path of the server's machine (schemathesis_hooks).

The server serves the tiny random-weight model, so thousands of generated requests run in
well under a minute: this checks the HTTP contract, which does not depend on the weights (the
default model's behaviour through the same routes is what the other integration tests check).
The embeddings route runs the real default embedding model. The statuses a schema-valid
request may still get, and why, are in schemathesis.toml.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from llmasos.models.repository import Repository
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.integration.test_server import start_server, stop_server

HERE = Path(__file__).parent
CONFIG = HERE / "schemathesis.toml"
SCHEMATHESIS = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
ADMIN_KEY = "schemathesis-admin"
EXAMPLES_PER_OPERATION = 30
SEED = 1  # a fixed seed: the same requests every run, so a failure reproduces


def leak_check(home: Path) -> dict[str, str]:
    """The environment that adds schemathesis_hooks.no_leaked_internals to the checks."""
    return {
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        "LLMASOS_LEAK_CHECK_HOME": str(home.resolve()),
    }


def test_schemathesis_finds_no_failures_in_any_check(fresh_home, tmp_path):
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    Repository(fresh_home / "models").import_file(tiny, "tiny")
    server, url = start_server(
        *("--model", "tiny", "--num-slots", "4", "--max-running", "4", "--admin-key", ADMIN_KEY),
        home=fresh_home,
        log=tmp_path / "server.log",
    )
    try:
        run = subprocess.run(
            [
                *(SCHEMATHESIS, "--no-color", "--config-file", str(CONFIG)),
                *("run", f"{url}/openapi.json", "--checks", "all"),
                *("--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED)),
                # agent memory embeds each text on the real embedding model, one at a time:
                # a burst of long texts queues past the default 10 s
                *("--request-timeout", "60"),
                # file paths have a documented pattern (no '.' or '..' segments) that
                # hypothesis often has to retry; the paths it does make are all tested
                *("--suppress-health-check", "filter_too_much"),
                *("--header", f"Authorization: Bearer {ADMIN_KEY}"),
                # GET /v1/watch streams until the client leaves (the dashboard's live view):
                # a fuzzer waiting for its end would wait forever; test_dashboard drives it
                *("--exclude-path", "/v1/watch"),
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
            env={**os.environ, **leak_check(fresh_home)},
        )
    finally:
        stop_server(server)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", report)
    tested = re.search(r"Tested: (\d+)", report)
    assert selected and tested, report[-4000:]
    excluded = 1  # GET /v1/watch (above)
    assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)) - excluded
    assert int(tested.group(1)) >= 20
    assert re.search(r"\d+ generated, \d+ passed", report), report[-4000:]
    assert (
        server.returncode is not None and "Traceback" not in (tmp_path / "server.log").read_text()
    )
