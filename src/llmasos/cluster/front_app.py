"""The front's HTTP app: the routes of one server, answered by the pool's replicas.

POST /v1/completions, /v1/chat/completions   routed (front.py)
GET  /v1/processes                           every replica's processes, merged
*    /v1/processes/{pid}..., /v1/agents/{pid}...   the replica the pid belongs to
GET  /v1/cluster                             nodes, replicas, load, the scaler
GET  /health                                 the front's own
*    anything else                           the first ready replica (models, files,
                                             memory, jobs, keys: one shared storage)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from llmasos.cluster.front import Front, no_replica
from llmasos.cluster.gather import merged_lists, merged_reports
from llmasos.cluster.metrics import merged, pool_lines
from llmasos.cluster.pool import ReplicaState
from llmasos.cluster.replica import replica_of_pid
from llmasos.errors import NoSuchProcessError
from llmasos.server.cluster_link import INTERNAL_PREFIX
from llmasos.server.errors import error_for, error_response
from llmasos.server.guards import MAX_BODY_BYTES

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


async def read_body(request: Request) -> bytes | Response:
    """The request's body, or a 413 past the server's body limit."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            message = f"the request body is over {MAX_BODY_BYTES} bytes"
            return error_response(413, message, kind="invalid_request_error")
    return bytes(body)


def create_front(front: Front, describe: Callable[[], dict[str, Any]]) -> FastAPI:
    """The front's app; `describe()` gives GET /v1/cluster's body (blocking: run in a thread)."""
    app = FastAPI(title="LLMasOS cluster front", docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        ready = len(front.pool.ready())
        return {"status": "ok" if ready else "starting", "replicas": ready}

    @app.get("/v1/cluster")
    async def cluster(request: Request) -> Response:
        refused = await _admin_check(front, request)
        return refused or JSONResponse(await run_in_threadpool(describe))

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return await _metrics(front, request)

    @app.post("/v1/completions")
    @app.post("/v1/chat/completions")
    @app.post(f"{INTERNAL_PREFIX}/v1/completions")  # a batch's lines, from the leading replica
    @app.post(f"{INTERNAL_PREFIX}/v1/chat/completions")
    @app.post("/v1/processes")  # a process goes where its prompt is cached, as a generation
    async def generate(request: Request) -> Response:
        body = await read_body(request)
        return body if isinstance(body, Response) else await front.generate(request, body)

    @app.post("/v1/agents")  # an agent starts on the least busy replica and stays there
    async def start_agent(request: Request) -> Response:
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        return await front.generate(request, body, seeded=False)

    @app.get("/v1/processes")
    @app.get("/v1/agents")
    async def listed(request: Request) -> Response:
        return await front.gathered(request, merged_lists)

    @app.get("/v1/stats")
    @app.get("/v1/memory")
    async def reports(request: Request) -> Response:
        return await front.gathered(request, merged_reports)

    @app.api_route("/v1/processes/{pid:int}{rest:path}", methods=METHODS)
    @app.api_route("/v1/agents/{pid:int}{rest:path}", methods=METHODS)
    async def by_pid(request: Request, pid: int, rest: str) -> Response:
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        handle = front.pool.get(replica_of_pid(pid))
        if handle is None or handle.state is ReplicaState.DEAD:  # it went with its replica
            return error_for(NoSuchProcessError(pid))
        return await front.to_replica(request, body, handle)

    @app.api_route("/{path:path}", methods=METHODS)
    async def elsewhere(request: Request, path: str) -> Response:
        body = await read_body(request)
        if isinstance(body, Response):
            return body
        handle = front.primary()
        return no_replica() if handle is None else await front.to_replica(request, body, handle)

    return app


async def _admin_check(front: Front, request: Request) -> Response | None:
    """The caller may see the cluster if it may see a replica's /metrics (admin-only when the
    OS has keys): the replicas keep the keys, the front asks the first that answers."""
    headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
    for handle in front.pool.ready():
        try:
            reply = await front.http.get(handle.url + "/metrics", headers=headers)
        except httpx.TransportError as error:  # its node went: the next one decides
            await run_in_threadpool(front.pool.mark_unreachable, handle, str(error))
            continue
        if reply.status_code == 200:
            return None
        kind = reply.headers.get("content-type", "application/json")
        return Response(reply.content, reply.status_code, {"content-type": kind})
    return no_replica()


async def _metrics(front: Front, request: Request) -> Response:
    """Every ready replica's /metrics merged, and the pool's series; a replica's refusal (a
    caller who may not read metrics) is answered as it is."""
    headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
    ready = front.pool.ready()
    replies = await asyncio.gather(
        *(front.http.get(h.url + "/metrics", headers=headers) for h in ready),
        return_exceptions=True,
    )
    texts = {}
    for handle, reply in zip(ready, replies, strict=True):
        if isinstance(reply, BaseException):
            continue  # gone meanwhile: the pool's series say so
        if reply.status_code != 200:
            return Response(reply.content, reply.status_code, {"content-type": "application/json"})
        texts[handle.replica] = reply.text
    lines = pool_lines(front.pool, front.traffic) + merged(texts)
    return PlainTextResponse("\n".join(lines) + "\n", media_type=PROMETHEUS)
