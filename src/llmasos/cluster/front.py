"""The cluster's front: where each request goes, and what happens when a replica goes.

Generation requests (/v1/completions, /v1/chat/completions) go to the replica the router picks:
the one holding the longest cached prefix of the prompt, balanced against load, an urgent one
where it waits least. A replica that does not answer is dropped and the request runs on
another: a whole answer is read before it is sent (the client gets it exactly once), a streamed
one goes on from where it was cut (relay.py). Every generation gets a seed when it has none, so
that a re-run draws the same tokens. Other routes go to one given replica (front_app.py).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from llmasos.cluster.gather import Merge
from llmasos.cluster.pool import PoolView, ReplicaHandle
from llmasos.cluster.proxy import (
    Outgoing,
    ReplicaUnreachable,
    passed_through,
    send,
    stream_reply,
    whole_reply,
)
from llmasos.cluster.relay import relayed
from llmasos.cluster.router import ReplicaLoad, Router
from llmasos.kernel.limits import SEED_MAX
from llmasos.server.errors import error_response

ROUTING_TEXT_CHARS = 64 * 1024  # the router looks at most at this much of a prompt


class Traffic:
    """Requests in flight per replica and recent first-byte times (the scaler's inputs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight: dict[int, int] = {}
        self.served: dict[int, int] = {}
        self.retries = 0
        self.ttfts: deque[float] = deque(maxlen=200)

    def begin(self, replica: int) -> None:
        with self._lock:
            self.in_flight[replica] = self.in_flight.get(replica, 0) + 1

    def end(self, replica: int) -> None:
        with self._lock:
            self.in_flight[replica] -= 1
            self.served[replica] = self.served.get(replica, 0) + 1

    def total_in_flight(self) -> int:
        with self._lock:
            return sum(self.in_flight.values())

    def ttft_p50(self) -> float | None:
        with self._lock:
            times = sorted(self.ttfts)
        return times[len(times) // 2] if times else None


@dataclass(frozen=True)
class Generation:
    """A generation request as the front routes it."""

    outgoing: Outgoing
    text: str  # what the router matches
    priority: int
    stream: bool

    @classmethod
    def of(cls, request: Request, body: bytes, *, seeded: bool = True) -> Generation:
        """The request as routed; `seeded` gives it a seed when it has none (a generation or
        a process, not an agent, whose spec has no seed)."""
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None  # the replica answers the 400
        text, priority = routing_text(payload)
        stream = isinstance(payload, dict) and payload.get("stream") is True
        if seeded and isinstance(payload, dict) and payload.get("seed") is None:
            payload["seed"] = secrets.randbelow(SEED_MAX + 1)  # a re-run draws the same tokens
            body = json.dumps(payload).encode()
        return cls(Outgoing.of(request, body), text, priority, stream)


def routing_text(payload: Any) -> tuple[str, int]:
    """The text the router matches (the prompt, or the chat rendered plainly) and the
    request's priority; empty when the body has neither (an agent's spec)."""
    if not isinstance(payload, dict):
        return "", 0
    priority = payload.get("priority", 0)
    priority = priority if isinstance(priority, int) and not isinstance(priority, bool) else 0
    if "prompt" in payload:
        prompt = payload.get("prompt")
        text = prompt[0] if isinstance(prompt, list) and prompt else prompt
    else:
        messages = payload.get("messages") or []
        chat = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        text = "".join(f"{m.get('role')}: {m.get('content')}\n" for m in chat)
    return (text[:ROUTING_TEXT_CHARS] if isinstance(text, str) else ""), priority


class Front:
    """Routes requests to the pool's replicas over one shared HTTP client."""

    def __init__(self, pool: PoolView, router: Router, traffic: Traffic) -> None:
        self.pool = pool
        self.router = router
        self.traffic = traffic
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0))

    async def generate(self, request: Request, body: bytes, *, seeded: bool = True) -> Response:
        """A generation (or a new process or agent) on the routed replica; on another if that
        one is gone, before or during its answer."""
        job = Generation.of(request, body, seeded=seeded)
        try:
            replica, response = await self._open_routed(job)
        except ReplicaUnreachable:
            return no_replica()
        if not job.stream:
            return whole_reply(response, replica)
        current: list[int] = [replica]  # the replica streaming now (none between two)

        async def reopen() -> httpx.Response:
            lost = current.pop()
            self.traffic.end(lost)
            await self._lost(lost, "it went away mid-stream")
            again, response = await self._open_routed(job)
            current.append(again)
            return response

        def done() -> None:
            if current:
                self.traffic.end(current.pop())

        return stream_reply(response, replica, relayed(response, reopen, done))

    async def _open_routed(self, job: Generation) -> tuple[int, httpx.Response]:
        """The answer of the routed replica, trying the next choice while one is unreachable."""
        for _ in range(len(self.pool.replicas()) + 1):
            in_flight = dict(self.traffic.in_flight)
            loads = [ReplicaLoad(str(h.replica), in_flight.get(h.replica, 0), 0)
                     for h in self.pool.ready()]  # fmt: skip
            if not loads:
                break
            replica = int(self.router.choose(job.text, loads, priority=job.priority))
            self.router.record(str(replica), job.text)
            try:
                return replica, await self._open(self.pool.get(replica), job.outgoing, job.stream)
            except ReplicaUnreachable as error:
                await self._lost(replica, str(error))
        raise ReplicaUnreachable("no replica is ready")

    async def _lost(self, replica: int, error: str) -> None:
        self.traffic.retries += 1
        self.router.forget(str(replica))
        handle = self.pool.get(replica)
        if handle is not None:
            await run_in_threadpool(self.pool.mark_unreachable, handle, error)

    async def _open(
        self, handle: ReplicaHandle | None, outgoing: Outgoing, stream: bool, counted: bool = True
    ) -> httpx.Response:
        """The replica's answer (headers only when `stream`; then a `counted` request stays
        in flight until the stream's end calls traffic.end). Reads are not `counted`: a
        dashboard's endless watch is no load to route or scale by."""
        if handle is None or not handle.url:
            raise ReplicaUnreachable("the replica is not ready")
        began = time.monotonic()
        if counted:
            self.traffic.begin(handle.replica)
        try:
            response = await send(self.http, handle.url, outgoing, handle.replica, stream=stream)
        except BaseException:  # unreachable, or the client left while it was being asked
            if counted:
                self.traffic.end(handle.replica)
            raise
        if counted and not stream:
            self.traffic.end(handle.replica)
        if counted:
            self.traffic.ttfts.append(time.monotonic() - began)
        return response

    async def to_replica(self, request: Request, body: bytes, handle: ReplicaHandle) -> Response:
        """Forward to one given replica (a process's own, or the first ready one); 503 while
        it is still starting."""
        if not handle.url:
            return no_replica()
        accept = request.headers.get("accept", "")
        stream = request.url.path.endswith("/events") or "text/event-stream" in accept
        counted = request.method != "GET"
        try:
            response = await self._open(handle, Outgoing.of(request, body), stream, counted)
        except ReplicaUnreachable as error:
            await run_in_threadpool(self.pool.mark_unreachable, handle, str(error))
            return no_replica()
        if not stream:
            return whole_reply(response, handle.replica)
        done = (lambda: self.traffic.end(handle.replica)) if counted else (lambda: None)
        return stream_reply(
            response, handle.replica, passed_through(response, handle.replica, done)
        )

    def primary(self) -> ReplicaHandle | None:
        ready = self.pool.ready()
        return ready[0] if ready else None

    async def gathered(self, request: Request, merge: Merge) -> Response:
        """One GET asked of every ready replica, the answers merged (gather.py); the first
        refusal (a caller who may not read it) is answered as the replica wrote it."""
        outgoing = Outgoing.of(request, b"")
        ready = self.pool.ready()
        replies = await asyncio.gather(
            *(send(self.http, h.url, outgoing, h.replica, stream=False) for h in ready),
            return_exceptions=True,
        )
        bodies: list[dict[str, Any]] = []
        for handle, reply in zip(ready, replies, strict=True):
            if isinstance(reply, BaseException):
                continue  # a replica that went away: what it held went with it
            if reply.status_code != 200:
                return whole_reply(reply, handle.replica)
            bodies.append(reply.json())
        return JSONResponse(merge(bodies)) if bodies else no_replica()


def no_replica() -> Response:
    return error_response(
        503, "no engine replica is ready; the pool is starting or healing", kind="server_error",
        code="no_replica",
    )  # fmt: skip
