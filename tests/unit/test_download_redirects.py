"""A real local HTTP server does the redirects: a download that it sends to 127.0.0.1, 10/8,
169.254.169.254 or a name resolving to a private address is refused before that hop is sent.

The server listens on 127.0.0.1, which the rules refuse, so the test's name "files.test"
resolves to a public address and a forwarding transport carries what the downloader sends to
that address on to the local server (as a NAT would): every redirect is the server's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import httpx
import pytest

from llmasos.errors import ModelFileError
from llmasos.models.download import UrlRules, download

PUBLIC = "93.184.216.34"
NAMES = {"files.test": [PUBLIC], "rebind.test": ["10.0.0.5"]}
REDIRECTS = {
    "/to-loopback": "https://127.0.0.1/m.gguf",
    "/to-private": "https://10.1.2.3/m.gguf",
    "/to-metadata": "https://169.254.169.254/latest/meta-data/",
    "/to-private-name": "https://rebind.test/m.gguf",
    "/to-self": "/model",
}
MODEL = b"GGUF" + bytes(range(256)) * 8


class Handler(BaseHTTPRequestHandler):
    served: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Handler.served.append(self.path)
        if self.path in REDIRECTS:
            self.send_response(302)
            self.send_header("Location", REDIRECTS[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(MODEL)))
        self.end_headers()
        self.wfile.write(MODEL)

    def log_message(self, *_: object) -> None:
        return None


class Forwarding(httpx.BaseTransport):
    """Sends what goes to the public address to the local server; anything else fails."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != PUBLIC:
            raise httpx.ConnectError(f"unreachable in this test: {request.url.host}")
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return self.inner.handle_request(request)


@pytest.fixture(scope="module")
def rules() -> Iterator[UrlRules]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield UrlRules(
        https_only=True,
        public_only=True,
        resolve=lambda host, _port: NAMES.get(host, ["127.0.0.1"]),
        transport=Forwarding(server.server_address[1]),
    )
    server.shutdown()


def fetched(url: str, rules: UrlRules) -> bytes:
    with download(url, rules) as reply:
        return b"".join(reply.chunks)


def test_a_public_url_and_a_redirect_to_a_public_one_download(rules):
    assert fetched("https://files.test/model", rules) == MODEL
    assert fetched("https://files.test/to-self", rules) == MODEL
    assert Handler.served[-2:] == ["/to-self", "/model"]


@pytest.mark.parametrize("path", [p for p in REDIRECTS if p != "/to-self"])
def test_a_redirect_to_a_private_address_is_refused_before_it_is_followed(rules, path):
    before = len(Handler.served)
    with pytest.raises(ModelFileError, match="not on a public address"):
        fetched(f"https://files.test{path}", rules)
    assert Handler.served[before:] == [path]  # the server redirected; nothing went further


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/m.gguf", "https://10.0.0.1/m.gguf", "https://169.254.169.254/"]
)
def test_a_private_address_is_refused_before_anything_is_sent(rules, url):
    before = len(Handler.served)
    with pytest.raises(ModelFileError, match="not on a public address"):
        fetched(url, rules)
    assert len(Handler.served) == before
