"""Downloads a model over http(s) under rules: scheme, public addresses, a size cap, a time limit.

For a server, where the URL comes from a client, every hop of a redirect chain is checked
again: its scheme, and every address its host name resolves to. The connection then goes to the
address that was checked (with the original host name for TLS and the Host header), so a name
that resolves to a public address when checked and to a private one a moment later (DNS
rebinding) cannot reach the private one.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from llmasos.errors import ModelFileError

READ_TIMEOUT_S = 60.0

# host, port -> the addresses the host name stands for
Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for `host`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ModelFileError(host, f"could not be resolved ({error})") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# IPv6 ranges that lead to IPv4 space or are deprecated; Python 3.11's is_global passes some.
_IPV6_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "::/96",  # IPv4-compatible
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64
        "64:ff9b:1::/48",  # local NAT64
        "2001::/32",  # Teredo
        "2002::/16",  # 6to4
        "fec0::/10",  # site-local
    )
)
_IPV6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def is_public(address: str) -> bool:
    """True for an address on the public internet: not loopback, private, link-local, shared,
    multicast or reserved, and for IPv6 global unicast outside the ranges that tunnel to IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip not in _IPV6_GLOBAL_UNICAST or any(ip in net for net in _IPV6_REFUSED)
    ):
        return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class UrlRules:
    """What a download may do. None means no limit."""

    https_only: bool = False
    public_only: bool = False
    max_bytes: int | None = None
    time_limit_s: float | None = None
    max_redirects: int = 5
    resolve: Resolver = field(default=system_resolver, compare=False)
    transport: httpx.BaseTransport | None = field(default=None, compare=False)  # tests


@dataclass(frozen=True)
class Download:
    chunks: Iterator[bytes]
    total: int | None  # from Content-Length, when the server sent one


@contextmanager
def download(url: str, rules: UrlRules) -> Iterator[Download]:
    """Open `url` under `rules`; ModelFileError naming the URL when a rule or the server
    refuses. The chunks iterator raises ModelFileError past the size cap or the time limit."""
    deadline = None if rules.time_limit_s is None else time.monotonic() + rules.time_limit_s
    with httpx.Client(transport=rules.transport, follow_redirects=False) as client:
        response = _follow(client, url, rules, deadline)
        try:
            if not response.is_success:
                raise ModelFileError(url, f"could not be downloaded: HTTP {response.status_code}")
            total = _content_length(response)
            if rules.max_bytes is not None and total is not None and total > rules.max_bytes:
                raise ModelFileError(url, f"is {total} bytes, over the limit of {rules.max_bytes}")
            yield Download(_bounded(response, url, rules.max_bytes, deadline), total)
        except httpx.HTTPError as error:
            raise ModelFileError(url, f"could not be downloaded ({error})") from error
        finally:
            response.close()


def _follow(
    client: httpx.Client, url: str, rules: UrlRules, deadline: float | None
) -> httpx.Response:
    """The response at the end of the redirect chain, each hop checked before it is sent."""
    for _ in range(rules.max_redirects + 1):
        request = _request(client, url, rules, deadline)
        try:
            response = client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise ModelFileError(url, f"could not be downloaded ({error})") from error
        if not response.is_redirect:
            return response
        response.close()
        url = urljoin(url, response.headers["location"])
    raise ModelFileError(url, f"redirects more than {rules.max_redirects} times")


def _request(
    client: httpx.Client, url: str, rules: UrlRules, deadline: float | None
) -> httpx.Request:
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise ModelFileError(url, f"is not a valid URL ({error})") from error
    allowed = ("https",) if rules.https_only else ("http", "https")
    if parts.scheme not in allowed or not parts.hostname:
        raise ModelFileError(url, f"must be a URL with scheme {' or '.join(allowed)}")
    timeout = httpx.Timeout(min(READ_TIMEOUT_S, _remaining(url, deadline)))
    if not rules.public_only:
        return _build(client, url, timeout=timeout)
    host = parts.hostname
    addresses = rules.resolve(host, port)
    if not addresses or not all(is_public(a) for a in addresses):
        raise ModelFileError(url, "is not on a public address; the server refuses it")
    pinned = addresses[0]
    netloc = f"[{pinned}]:{port}" if ":" in pinned else f"{pinned}:{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return _build(
        client,
        target,
        headers={"Host": parts.netloc.rsplit("@", 1)[-1]},
        extensions={"sni_hostname": host},
        timeout=timeout,
    )


def _build(client: httpx.Client, url: str, **options) -> httpx.Request:
    try:
        return client.build_request("GET", url, **options)
    except httpx.InvalidURL as error:
        raise ModelFileError(url, f"is not a valid URL ({error})") from error


def _remaining(url: str, deadline: float | None) -> float:
    if deadline is None:
        return READ_TIMEOUT_S
    left = deadline - time.monotonic()
    if left <= 0:
        raise ModelFileError(url, "took longer than the download time limit")
    return left


def _content_length(response: httpx.Response) -> int | None:
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def _bounded(
    response: httpx.Response, url: str, max_bytes: int | None, deadline: float | None
) -> Iterator[bytes]:
    received = 0
    try:  # chunks as they arrive, so the limits are checked after every read
        for chunk in response.iter_bytes():
            received += len(chunk)
            if max_bytes is not None and received > max_bytes:
                raise ModelFileError(url, f"sent more than the limit of {max_bytes} bytes")
            _remaining(url, deadline)
            yield chunk
    except httpx.HTTPError as error:
        raise ModelFileError(url, f"could not be downloaded ({error})") from error
