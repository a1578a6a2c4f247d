"""GET /v1/watch: what the dashboard shows, pushed as server-sent events.

The server looks every `interval` seconds (1 by default) and sends a `snapshot` event only when
something changed, a comment line every 15 s otherwise: an open dashboard costs one stream,
not a poll of every route. A snapshot holds what the caller may see through the API's own
routes: its processes (with their KV pages and swap), agents, training jobs, the loaded
models, and each loaded model's KV memory (its own processes' share for a non-admin)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmasos.agents.serialize import agent_info_to_json
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import ProcessInfo
from llmasos.server.native_api import loaded_rows
from llmasos.server.ownership import owner_filter, sees_all, visible
from llmasos.server.usage_release import own_memory
from llmasos.wire import info_to_json, memory_to_json

router = APIRouter()
HEARTBEAT_S = 15.0
MAX_ENDED = 50  # ended processes a snapshot keeps (the latest), beside every live one
SHARED_S = 0.25  # a snapshot younger than this serves every caller who sees the same
MAX_STREAM_S = 300.0  # then the stream ends: the client reconnects, and its key is checked again
_views: dict[str, tuple[threading.Lock, list[Any]]] = {}  # view -> its lock, [time, snapshot]
_views_lock = threading.Lock()


@router.get(
    "/v1/watch",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def watch(
    request: Request,
    interval: Annotated[float, Query(ge=0.2, le=60)] = 1.0,
    once: bool = False,
) -> StreamingResponse:
    """Snapshots as they change (`once`: the first one, then the stream ends; it also ends
    after MAX_STREAM_S, for the client to reconnect with a key that is still valid)."""

    async def events() -> Any:
        last, quiet, ends = None, 0.0, time.monotonic() + MAX_STREAM_S
        while not await request.is_disconnected() and time.monotonic() < ends:
            text = await run_in_threadpool(shared_snapshot, request)
            if text != last:
                last, quiet = text, 0.0
                yield f"event: snapshot\ndata: {text}\n\n"
                if once:
                    return
            elif quiet >= HEARTBEAT_S:
                quiet = 0.0
                yield ": nothing changed\n\n"
            await asyncio.sleep(interval)
            quiet += interval

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def shared_snapshot(request: Request) -> str:
    """The caller's snapshot as JSON; the tabs of one owner and role share one taken less than
    SHARED_S ago, so more tabs cost little more (one view waits only for its own)."""
    view = f"{id(request.app)}\0{request.state.owner}\0{request.state.role.value}"
    with _views_lock:
        lock, taken = _views.setdefault(f"{view}\0{sees_all(request)}", (threading.Lock(), []))
    with lock:
        if taken and time.monotonic() - taken[0] < SHARED_S:
            return str(taken[1])
        text = json.dumps(snapshot(request), sort_keys=True)
        taken[:] = [time.monotonic(), text]
        return text


def snapshot(request: Request) -> dict[str, Any]:
    """What the caller may see now (blocking: call it in a worker thread)."""
    models = request.app.state.models
    sees = request.state.capabilities.sees_model  # not another owner's private models
    memory = {n: _memory(request, k) for n, k in models.kernels().items() if sees(n)}
    held = {p["pid"]: p for report in memory.values() for p in report.pop("processes")}
    mine = [p for p in models.processes() if visible(request, p.owner)]
    ended = [p for p in mine if not p.alive][-MAX_ENDED:]
    rows = []
    for process in [p for p in mine if p.alive] + ended:
        row = info_to_json(ProcessInfo.of(process))
        kv = held.get(process.pid, {})
        row.update(pages=kv.get("pages", 0), swap=kv.get("swap_location"))
        rows.append(row)
    agents = request.app.state.agents.agents(include_ended=False)
    jobs = request.app.state.jobs
    return {
        "owner": request.state.owner,
        "role": request.state.role.value,
        "processes": rows,
        "agents": [agent_info_to_json(a) for a in agents if visible(request, a.owner)],
        "jobs": [s.to_json() for s in jobs.list(owner_filter(request))] if jobs is not None else [],
        # not how long each has been idle: that changes every second
        "models": [{k: v for k, v in row.items() if k != "idle_s"} for row in loaded_rows(request)],
        "memory": memory,
    }


def _memory(request: Request, kernel: Kernel) -> dict[str, Any]:
    report = kernel.memory_report()
    if not sees_all(request):
        report = own_memory(report, request.state.owner)
    return memory_to_json(report)
