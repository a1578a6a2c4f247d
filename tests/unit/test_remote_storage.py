"""client.fs against a server checks paths as the server would before they travel: an HTTP
client resolves '..' segments on its way and would otherwise reach another file."""

from __future__ import annotations

import httpx
import pytest

from llmasos.errors import InvalidRequestError
from llmasos.remote_storage import RemoteFileSystem


def _never_sent(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"sent {request.method} {request.url}")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda fs: fs.write("x/../~bob/y", b"data"), "path"),
        (lambda fs: fs.read("a/./b"), "path"),
        (lambda fs: fs.move("a.txt", "../b.txt"), "destination"),
        (lambda fs: fs.list("x/.."), "prefix"),
        (lambda fs: fs.grant("/~bob", "carol"), "prefix"),
    ],
)
def test_a_path_the_server_would_refuse_is_refused_before_it_travels(call, field):
    http = httpx.Client(base_url="http://server", transport=httpx.MockTransport(_never_sent))
    with pytest.raises(InvalidRequestError) as error:
        call(RemoteFileSystem(http))
    assert error.value.field == field
