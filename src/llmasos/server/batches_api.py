"""OpenAI's files and batches, as the official client calls them (the caller's own only):

POST   /v1/files                      upload (multipart: file, purpose "batch")
GET    /v1/files                      the caller's files
GET    /v1/files/{file_id}            one file's object
GET    /v1/files/{file_id}/content    its bytes
DELETE /v1/files/{file_id}            delete it (its history too)
POST   /v1/batches                    {"input_file_id", "endpoint", "completion_window": "24h",
                                      "metadata"}: checked line by line, then run in the
                                      background (server/batch_runner.py)
GET    /v1/batches                    the caller's batches
GET    /v1/batches/{batch_id}         one batch, with its request counts so far
POST   /v1/batches/{batch_id}/cancel  stop starting lines; the batch ends cancelled
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParameter
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from llmasos.errors import InvalidRequestError
from llmasos.jobs.batch_lines import ACTIVE, BatchStatus
from llmasos.jobs.batch_store import BatchStore, new_id
from llmasos.server.batch_runner import BatchRunner
from llmasos.server.fs_api import Strict

router = APIRouter(tags=["batches"])
FileId = Annotated[str, PathParameter(pattern="^file-[0-9a-f]{24}$")]
BatchId = Annotated[str, PathParameter(pattern="^batch-[0-9a-f]{24}$")]
WINDOW_S = 24 * 3600
MAX_FILENAME_CHARS = 255


class BatchBody(Strict):
    input_file_id: Annotated[str, Field(pattern="^file-[0-9a-f]{24}$")]
    endpoint: Literal["/v1/chat/completions", "/v1/completions"]
    completion_window: Literal["24h"] = "24h"
    metadata: (
        Annotated[
            dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
            Field(max_length=16),
        ]
        | None
    ) = None


def store_of(request: Request) -> BatchStore:
    return request.app.state.batch_store


def runner_of(request: Request) -> BatchRunner:
    return request.app.state.batch_runner


# -- files ----------------------------------------------------------------------------------


@router.post("/v1/files")
async def upload(
    request: Request,
    file: Annotated[UploadFile, File(description="The JSONL file")],
    purpose: Annotated[Literal["batch"], Form()],
) -> dict[str, Any]:
    name = "".join(c for c in file.filename or "" if c.isprintable())[:MAX_FILENAME_CHARS]
    name = name or "upload.jsonl"
    data = await file.read()
    record = await run_in_threadpool(
        store_of(request).add_file, request.state.owner, name, purpose, data
    )
    return record.to_json()


@router.get("/v1/files")
async def list_files(request: Request) -> dict[str, Any]:
    records = await run_in_threadpool(store_of(request).files, request.state.owner)
    return {"object": "list", "data": [r.to_json() for r in records], "has_more": False}


@router.get("/v1/files/{file_id}")
async def get_file(file_id: FileId, request: Request) -> dict[str, Any]:
    record = await run_in_threadpool(store_of(request).file, request.state.owner, file_id)
    return record.to_json()


@router.get(
    "/v1/files/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {}}}}},
)
async def file_content(file_id: FileId, request: Request) -> StreamingResponse:
    """The bytes; an output file's lines are made from the batch's answers as they are sent."""
    chunks = await run_in_threadpool(store_of(request).content, request.state.owner, file_id)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.delete("/v1/files/{file_id}")
async def delete_file(file_id: FileId, request: Request) -> dict[str, Any]:
    await run_in_threadpool(store_of(request).delete_file, request.state.owner, file_id)
    return {"id": file_id, "object": "file", "deleted": True}


# -- batches --------------------------------------------------------------------------------


@router.post("/v1/batches")
async def create_batch(body: BatchBody, request: Request) -> dict[str, Any]:
    store, owner = store_of(request), request.state.owner
    record = await run_in_threadpool(store.file, owner, body.input_file_id, "input_file_id")
    if record.purpose != "batch":
        raise InvalidRequestError("input_file_id", f"is a {record.purpose} file, not a batch one")
    lines = await run_in_threadpool(store.requests, owner, record.id, body.endpoint)
    now = int(time.time())
    batch = {
        "id": new_id("batch"), "object": "batch", "endpoint": body.endpoint, "errors": None,
        "input_file_id": record.id, "completion_window": body.completion_window,
        "status": BatchStatus.VALIDATING, "output_file_id": None, "error_file_id": None,
        "created_at": now, "in_progress_at": None, "expires_at": now + WINDOW_S,
        "finalizing_at": None, "completed_at": None, "failed_at": None, "expired_at": None,
        "cancelling_at": None, "cancelled_at": None,
        "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        "metadata": body.metadata or {},
    }  # fmt: skip
    await run_in_threadpool(store.add_batch, owner, request.state.key_id, batch)
    runner_of(request).wake()
    return batch


@router.get("/v1/batches")
async def list_batches(
    request: Request,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Newest first, `limit` at a time after the batch `after` (OpenAI's paging)."""
    store, owner = store_of(request), request.state.owner
    rows = await run_in_threadpool(
        lambda: [_with_counts(request, b) for b in reversed(store.batches(owner))]
    )
    if after is not None:
        ids = [b["id"] for b in rows]
        rows = rows[ids.index(after) + 1 :] if after in ids else []
    page = rows[:limit]
    return {
        "object": "list", "data": page, "has_more": len(rows) > limit,
        "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None,
    }  # fmt: skip


@router.get("/v1/batches/{batch_id}")
async def get_batch(batch_id: BatchId, request: Request) -> dict[str, Any]:
    batch = await run_in_threadpool(store_of(request).batch, request.state.owner, batch_id)
    return await run_in_threadpool(_with_counts, request, batch)


@router.post("/v1/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: BatchId, request: Request) -> dict[str, Any]:
    store = store_of(request)
    batch = await run_in_threadpool(store.batch, request.state.owner, batch_id)
    fields = {"status": BatchStatus.CANCELLING, "cancelling_at": int(time.time())}
    states = (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS)
    moved = await run_in_threadpool(lambda: store.transition(batch_id, states, **fields))
    if moved is None:
        return await run_in_threadpool(_with_counts, request, batch)  # ended, or ending
    runner_of(request).cancel(batch_id)
    runner_of(request).wake()
    return await run_in_threadpool(_with_counts, request, moved[1])


def _with_counts(request: Request, batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with its request counts as of now (while it runs, from the answers so far)."""
    if batch["status"] not in ACTIVE:
        return batch
    answered, failed = store_of(request).counts(batch["id"])
    counts = {**batch["request_counts"], "completed": answered - failed, "failed": failed}
    return {**batch, "request_counts": counts}
