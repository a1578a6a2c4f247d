"""Forwarding one HTTP request to a replica, and its answer back.

The front never interprets a replica's answer but for streamed generations (relay.py): status,
headers and body pass through, so a replica's errors (401, 403, 429 with Retry-After, 400
naming a field) reach the client as the replica wrote them. The caller's Authorization goes
along: each replica checks keys itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

# Hop-by-hop and framing headers: the front's own connection decides them.
_DROPPED = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
}
REPLICA_HEADER = "x-llmasos-replica"


class ReplicaUnreachable(Exception):
    """The replica did not answer (its node died, it stopped): the request may go elsewhere,
    since nothing of it reached the client."""


@dataclass(frozen=True)
class Outgoing:
    """A client's request as the front forwards it."""

    method: str
    path: str  # with the query string
    headers: dict[str, str]
    body: bytes

    @classmethod
    def of(cls, request: Request, body: bytes) -> Outgoing:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        query = f"?{request.url.query}" if request.url.query else ""
        return cls(request.method, request.url.path + query, headers, body)


async def send(
    http: httpx.AsyncClient, url: str, outgoing: Outgoing, replica: int, *, stream: bool
) -> httpx.Response:
    """The replica's answer: read whole, or with only its headers read when `stream`. A replica
    that does not answer (or dies before the whole answer is read) raises ReplicaUnreachable."""
    request = http.build_request(
        outgoing.method, url + outgoing.path, headers=outgoing.headers, content=outgoing.body
    )
    try:
        response = await http.send(request, stream=stream)
    except httpx.TransportError as error:
        raise ReplicaUnreachable(f"replica {replica}: {type(error).__name__}: {error}") from None
    return response


def reply_headers(response: httpx.Response, replica: int) -> dict[str, str]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROPPED}
    headers[REPLICA_HEADER] = str(replica)
    return headers


def whole_reply(response: httpx.Response, replica: int) -> Response:
    return Response(response.content, response.status_code, reply_headers(response, replica))


def stream_reply(
    response: httpx.Response, replica: int, body: AsyncIterator[bytes]
) -> StreamingResponse:
    return StreamingResponse(body, response.status_code, reply_headers(response, replica))


async def passed_through(
    response: httpx.Response, replica: int, done: Callable[[], None]
) -> AsyncIterator[bytes]:
    """A streamed answer's bytes as they come; a replica gone mid-stream ends it with an error
    event. `done` runs once the stream ends, however it ends."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TransportError:
        yield error_event(f"replica {replica} went away mid-stream; retry the request")
    finally:
        await response.aclose()
        done()


def error_event(message: str, code: str = "replica_lost") -> bytes:
    body = {"error": {"message": message, "type": "server_error", "code": code}}
    return f"data: {json.dumps(body)}\n\n".encode()
