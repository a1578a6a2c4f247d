"""The download rules alone: which addresses count as public, the size cap and the time limit
on a streamed body, malformed URLs (the network is a mock transport)."""

from __future__ import annotations

import time

import httpx
import pytest

from llmasos.errors import ModelFileError
from llmasos.models.download import UrlRules, download, is_public


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # shared address space
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::10.0.0.1", False),  # IPv4-compatible
        ("64:ff9b::a00:1", False),  # NAT64 to 10.0.0.1
        ("2002:a00:1::", False),  # 6to4
        ("2001:0:4136:e378::1", False),  # Teredo
        ("fec0::1", False),  # site-local
        ("not an address", False),
    ],
)
def test_public_addresses(address, public):
    assert is_public(address) is public


def rules(handler, **limits) -> UrlRules:
    return UrlRules(
        https_only=True,
        public_only=True,
        resolve=lambda host, port: ["93.184.216.34"],
        transport=httpx.MockTransport(handler),
        **limits,
    )


def drain(url: str, url_rules: UrlRules) -> int:
    with download(url, url_rules) as reply:
        return sum(len(chunk) for chunk in reply.chunks)


def test_a_body_without_a_length_is_cut_at_the_size_cap():
    def endless(_request):
        return httpx.Response(200, content=(b"x" * 65536 for _ in range(1000)))

    with pytest.raises(ModelFileError, match="more than the limit of 200000 bytes"):
        drain("https://cdn.example/m.gguf", rules(endless, max_bytes=200_000))


def test_a_server_that_drips_its_body_is_cut_at_the_time_limit():
    def drip(_request):
        def body():
            while True:
                time.sleep(0.05)
                yield b"x"

        return httpx.Response(200, content=body())

    with pytest.raises(ModelFileError, match="took longer than the download time limit"):
        drain("https://cdn.example/m.gguf", rules(drip, time_limit_s=0.5))


def test_a_body_within_the_limits_arrives_whole():
    def small(_request):
        return httpx.Response(200, content=(b"y" * 1000 for _ in range(5)))

    assert (
        drain("https://cdn.example/m.gguf", rules(small, max_bytes=5000, time_limit_s=30)) == 5000
    )


@pytest.mark.parametrize(
    "url", ["https://cdn.example:99999/m.gguf", "https://[::1/m.gguf", "https:///m.gguf"]
)
def test_malformed_urls_are_a_clear_error(url):
    with pytest.raises(ModelFileError, match=r"URL|scheme"):
        drain(url, rules(lambda _request: httpx.Response(200)))
