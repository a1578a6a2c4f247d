"""A check schemathesis runs on every response of tests/integration/test_openapi.py (loaded
through SCHEMATHESIS_HOOKS): no body leaks a stack trace or a path on the server's machine."""

from __future__ import annotations

import os

import schemathesis

LEAKS = ("Traceback (most recent call last)", 'File "/', "site-packages", "llmasos/src/")


@schemathesis.check
def no_leaked_internals(ctx, response, case) -> None:
    text = response.content.decode("utf-8", "replace")
    home = os.environ.get("LLMASOS_LEAK_CHECK_HOME")
    for leak in (*LEAKS, *([home] if home else [])):
        if leak in text:
            raise AssertionError(f"the response shows {leak!r}: {text[:300]}")
