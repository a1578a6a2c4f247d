"""LLMasOS's own routes: processes, signals, models, memory, stats, health and metrics."""

from __future__ import annotations

import calendar
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from llmasos.auth.capabilities import Capabilities
from llmasos.chat import check_messages
from llmasos.errors import InvalidRequestError, PermissionDeniedError, UnknownModelError
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import ProcessInfo, Signal
from llmasos.models.repository import Repository
from llmasos.server.api_docs import PROCESS_ROUTES, ModelNameParameter, Pid, links, streamed
from llmasos.server.events import merged_events
from llmasos.server.guards import audit, caller_of
from llmasos.server.openai_api import chat_prompts, models_of, plain_prompts, spawn_all
from llmasos.server.ownership import owned_process, sees_all, visible
from llmasos.server.schemas import (
    ChatSpawn,
    ForkRequest,
    ForkSeeds,
    PriorityRequest,
    SignalRequest,
    SpawnRequest,
    messages_as_dicts,
)
from llmasos.server.usage_release import own_memory, released_status
from llmasos.wire import event_to_json, info_to_json, memory_to_json, result_to_json

router = APIRouter()
open_router = APIRouter()  # no API key needed


@open_router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    """Answers on the event loop, from books that are never locked for long: it stays quick
    while a model loads or a step runs. It needs no key, so it names shared models only."""
    models = models_of(request)
    shared = Capabilities(private_models=models.repository).sees_model  # no owner: shared ones
    return {
        "status": "ok",
        "model": models.default_model,
        "loaded": [m.name for m in models.loaded() if shared(m.name)],
    }


@router.get("/v1/whoami")
async def whoami(request: Request) -> dict[str, Any]:
    """Who the caller's key makes it: its owner name and role (what `llmasos shell` may run)."""
    return {"owner": request.state.owner, "role": request.state.role.value}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    """Every owner's counters, exactly: for admins (and servers without keys)."""
    if not sees_all(request):
        raise PermissionDeniedError(
            "/metrics shows every owner's usage: it needs an admin key (GET /v1/stats "
            "releases the aggregates with differential privacy)"
        )
    text = request.app.state.metrics.render()
    return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)


def _loaded_kernel(request: Request, model: str | None) -> Kernel:
    """The kernel of a model that is loaded now; a report never loads a model nor resets its
    keep-alive."""
    models = models_of(request)
    sees = request.state.capabilities.sees_model  # another owner's private model: not loaded
    kernel = models.peek(model) if model is None or sees(model) else None
    if kernel is None:
        name = models.canonical(model)
        loaded = [m.name for m in models.loaded() if sees(m.name)]
        raise UnknownModelError(f"{name} (not loaded)", loaded)
    return kernel


@router.get("/v1/stats")
def stats(request: Request, model: str | None = None) -> dict[str, Any]:
    """Exact for admins; other callers get the usage counters with differential privacy."""
    status = _loaded_kernel(request, model).status()
    if sees_all(request):
        return dataclasses.asdict(status)
    return released_status(request.app.state.usage_release, status)


@router.get("/v1/memory")
def memory(request: Request, model: str | None = None) -> dict[str, Any]:
    """Everything for admins; other callers see their own processes' share."""
    report = _loaded_kernel(request, model).memory_report()
    if not sees_all(request):
        report = own_memory(report, request.state.owner)
    return memory_to_json(report)


# -- processes ------------------------------------------------------------------------------


@router.get("/v1/processes")
async def list_processes(request: Request) -> dict[str, Any]:
    processes = [p for p in models_of(request).processes() if visible(request, p.owner)]
    infos = [info_to_json(ProcessInfo.of(p)) for p in processes]
    return {"object": "list", "data": infos}


@router.post(
    "/v1/processes",
    status_code=201,
    responses={201: {"description": "The process", "links": links("/pid", "pid", PROCESS_ROUTES)}},
)
def spawn(body: SpawnRequest, request: Request) -> dict[str, Any]:
    """Runs in a worker thread (a sync route): it may load the model and tokenises."""
    body.sampling_params()
    if isinstance(body, ChatSpawn):
        prompts = chat_prompts(check_messages(messages_as_dicts(body.messages)))
    else:
        prompts = plain_prompts([body.prompt])
    _, (process,), _ = spawn_all(request, body, prompts)
    return info_to_json(ProcessInfo.of(process))


@router.get("/v1/processes/{pid}")
async def get_process(pid: Pid, request: Request) -> dict[str, Any]:
    _, process = owned_process(request, pid)
    body = info_to_json(ProcessInfo.of(process))
    body["text"] = process.output.released_text
    body["result"] = result_to_json(process.result) if process.result else None
    return body


@router.post("/v1/processes/{pid}/signal")
async def signal(pid: Pid, body: SignalRequest, request: Request) -> dict[str, Any]:
    kernel, _ = owned_process(request, pid)
    await run_in_threadpool(kernel.signal, pid, Signal(body.signal))
    await run_in_threadpool(audit, request, f"process.{body.signal}", f"pid {pid}")
    return info_to_json(ProcessInfo.of(kernel.get(pid)))


@router.post("/v1/processes/{pid}/priority")
async def renice(pid: Pid, body: PriorityRequest, request: Request) -> dict[str, Any]:
    """Give the process another priority (the scheduler ranks it anew at its next step)."""
    kernel, _ = owned_process(request, pid)
    await run_in_threadpool(kernel.renice, pid, body.priority)
    await run_in_threadpool(
        audit, request, "process.renice", f"pid {pid}", "ok", str(body.priority)
    )
    return info_to_json(ProcessInfo.of(kernel.get(pid)))


@router.post(
    "/v1/processes/{pid}/fork",
    status_code=201,
    responses={
        201: {"description": "The children", "links": links("/data/0/pid", "pid", PROCESS_ROUTES)}
    },
)
async def fork(pid: Pid, body: ForkRequest, request: Request) -> dict[str, Any]:
    """Children of `pid` that share what it computed so far; see ProcessHandle.fork."""
    kernel, parent = owned_process(request, pid)
    seeds = body.seeds if isinstance(body, ForkSeeds) else None
    n = len(body.seeds) if isinstance(body, ForkSeeds) else body.n
    request.state.capabilities.check_model(kernel.engine.info.model_name)
    left = max(0, parent.params.max_tokens - parent.num_output_tokens)
    await request.app.state.rate_limiter.charge(caller_of(request), n * left)
    children = await run_in_threadpool(kernel.fork, pid, n, seeds=seeds)
    return {"object": "list", "data": [info_to_json(ProcessInfo.of(c)) for c in children]}


@router.get(
    "/v1/processes/{pid}/events",
    response_class=StreamingResponse,
    responses=streamed("The output so far, each new piece, then the result.", json_too=False),
)
def events(pid: Pid, request: Request) -> StreamingResponse:
    """Server-sent events: the output so far, then each new piece, then the result.
    Disconnecting does not kill the process (unlike a streamed completion)."""
    _, process = owned_process(request, pid)

    async def sse() -> AsyncIterator[str]:
        async for _, event in merged_events([process]):
            yield f"data: {json.dumps(event_to_json(event), ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream")


# -- models ---------------------------------------------------------------------------------


def repository_of(request: Request) -> Repository:
    repository = models_of(request).repository
    if repository is None:
        raise InvalidRequestError("model", "this server has no model repository")
    return repository


@router.get("/v1/models/loaded")
def loaded_models(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": loaded_rows(request)}


def loaded_rows(request: Request) -> list[dict[str, Any]]:
    """The loaded models (a non-admin's: those it may use); a non-admin's live_processes
    counts its own processes only."""
    models = models_of(request)
    sees = request.state.capabilities.sees_model
    rows = [dataclasses.asdict(m) for m in models.loaded() if sees(m.name)]
    if not sees_all(request):
        for row in rows:
            kernel = models.peek(row["name"])
            own = kernel.processes() if kernel is not None else []
            row["live_processes"] = sum(visible(request, p.owner) and p.alive for p in own)
    return rows


@router.get("/v1/models/{name}")
def show_model(name: ModelNameParameter, request: Request) -> dict[str, Any]:
    request.state.capabilities.check_visible(name)  # another owner's private model: 404
    manifest = repository_of(request).show(name)
    imported = calendar.timegm(time.strptime(manifest.imported_at, "%Y-%m-%dT%H:%M:%SZ"))
    return {
        "id": manifest.name,
        "object": "model",
        "created": imported,
        "owned_by": "llmasos",
        **dataclasses.asdict(manifest),
    }


@router.post("/v1/models/{name}/load")
async def load_model(name: ModelNameParameter, request: Request) -> dict[str, Any]:
    models = models_of(request)
    request.state.capabilities.check_model(name)
    loaded = await run_in_threadpool(models.load, name)
    return {"name": loaded.name, "device": loaded.device, "memory_bytes": loaded.memory_bytes}
