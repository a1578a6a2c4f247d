"""LLMasOS's own routes: processes, signals, stats, health and metrics."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmasos.chat import check_messages, render_chat
from llmasos.errors import InvalidRequestError
from llmasos.kernel.process import ProcessInfo, Signal
from llmasos.server.events import merged_events
from llmasos.server.metrics import render_metrics
from llmasos.server.openai_api import kernel_of
from llmasos.server.schemas import SignalRequest, SpawnRequest
from llmasos.wire import event_to_json, info_to_json, memory_to_json, result_to_json

router = APIRouter()
open_router = APIRouter()  # no API key needed


@open_router.get("/health")
def health(request: Request) -> dict[str, Any]:
    kernel = kernel_of(request)
    return {
        "status": "ok",
        "model": kernel.engine.info.model_name,
        "policy": kernel.config.policy,
    }


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request) -> PlainTextResponse:
    return PlainTextResponse(
        render_metrics(kernel_of(request)), media_type="text/plain; version=0.0.4"
    )


@router.get("/v1/stats")
def stats(request: Request) -> dict[str, Any]:
    return dataclasses.asdict(kernel_of(request).status())


@router.get("/v1/memory")
def memory(request: Request) -> dict[str, Any]:
    return memory_to_json(kernel_of(request).memory_report())


@router.get("/v1/processes")
def list_processes(request: Request) -> dict[str, Any]:
    infos = [info_to_json(ProcessInfo.of(p)) for p in kernel_of(request).processes()]
    return {"object": "list", "data": infos}


@router.post("/v1/processes", status_code=201)
def spawn(body: SpawnRequest, request: Request) -> dict[str, Any]:
    kernel = kernel_of(request)
    if (body.prompt is None) == (body.messages is None):
        raise InvalidRequestError("prompt", "send exactly one of prompt and messages")
    extra_stop: tuple[str, ...] = ()
    prompt = body.prompt
    if body.messages is not None:
        chat = render_chat(check_messages(body.messages), kernel.engine.info)
        prompt, extra_stop = chat.text, chat.stop
    process = kernel.spawn(
        prompt,
        body.sampling_params(extra_stop),
        priority=body.priority,
        owner=request.state.owner,
        model=body.model,
    )
    return info_to_json(ProcessInfo.of(process))


@router.get("/v1/processes/{pid}")
def get_process(pid: int, request: Request) -> dict[str, Any]:
    process = kernel_of(request).get(pid)
    body = info_to_json(ProcessInfo.of(process))
    body["text"] = process.output.released_text
    body["result"] = result_to_json(process.result) if process.result else None
    return body


@router.post("/v1/processes/{pid}/signal")
async def signal(pid: int, body: SignalRequest, request: Request) -> dict[str, Any]:
    kernel = kernel_of(request)
    await run_in_threadpool(kernel.signal, pid, Signal(body.signal))
    return info_to_json(ProcessInfo.of(kernel.get(pid)))


@router.get("/v1/processes/{pid}/events")
def events(pid: int, request: Request) -> StreamingResponse:
    """Server-sent events: the output so far, then each new piece, then the result.
    Disconnecting does not kill the process (unlike a streamed completion)."""
    process = kernel_of(request).get(pid)

    async def sse() -> AsyncIterator[str]:
        async for _, event in merged_events([process]):
            yield f"data: {json.dumps(event_to_json(event), ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream")
