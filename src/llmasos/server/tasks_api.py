"""Training jobs over HTTP (the caller's own only; admins see all):

POST /v1/tasks                      {"task": TrainingTask fields, "data": "<the JSONL records>"}
GET  /v1/tasks                      the caller's jobs
GET  /v1/tasks/{task_id}            one job's status: state, progress, step, loss, epsilon, ...
GET  /v1/tasks/{task_id}/logs       its step log (?after_step=N for the steps past N)
POST /v1/tasks/{task_id}/cancel     stop it for good (after its step under way)
POST /v1/tasks/{task_id}/suspend    stop it at a checkpoint
POST /v1/tasks/{task_id}/resume     queue it again; it goes on from its checkpoint
DELETE /v1/tasks/{task_id}          remove an ended job (its data and log; its model stays)
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParameter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from llmasos.errors import InvalidRequestError
from llmasos.jobs.job_manager import JobManager
from llmasos.jobs.tasks import (
    BACKGROUND_PRIORITY,
    MAX_BATCH_SIZE,
    MAX_CHECKPOINT_EVERY,
    MAX_EPOCHS,
    MAX_LORA_RANK,
    MAX_SEQUENCE_TOKENS,
    TrainingTask,
)
from llmasos.server.fs_api import Strict
from llmasos.server.guards import MAX_BODY_BYTES, audit
from llmasos.server.ownership import owner_filter

router = APIRouter(tags=["tasks"])
TaskId = Annotated[str, PathParameter(pattern="^task-[0-9a-f]{16}$")]


NAME = r"^[a-z0-9][a-z0-9._-]{0,63}(:[a-z0-9][a-z0-9._-]{0,63})?$"  # NAME[:TAG]


class PrivacyFields(Strict):
    epsilon: Annotated[float, Field(ge=0.01, le=1000)]
    delta: Annotated[float, Field(ge=1e-12, le=0.1)] = 1e-5
    max_grad_norm: Annotated[float, Field(ge=1e-6, le=1e6)] = 1.0
    noise_multiplier: Annotated[float, Field(ge=0.1, le=100)] | None = None


class TaskFields(Strict):
    """TrainingTask's fields and bounds (llmasos.jobs.tasks)."""

    model: Annotated[str, Field(pattern=NAME)]
    data: Annotated[str, Field(min_length=1, max_length=4096)]  # the file's name, for the record
    method: Literal["lora"] = "lora"
    epochs: Annotated[int, Field(ge=1, le=MAX_EPOCHS)] = 1
    learning_rate: Annotated[float, Field(ge=1e-8, le=1.0)] = 2e-4
    output: Annotated[str, Field(pattern=NAME)] | None = None
    privacy: PrivacyFields | None = None
    batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)] = 4
    lora_rank: Annotated[int, Field(ge=1, le=MAX_LORA_RANK)] = 8
    max_tokens_per_sample: Annotated[int, Field(ge=8, le=MAX_SEQUENCE_TOKENS)] = 256
    checkpoint_every: Annotated[int, Field(ge=1, le=MAX_CHECKPOINT_EVERY)] = 10
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    priority: Annotated[int, Field(ge=-1000, le=1000)] = BACKGROUND_PRIORITY


class TaskBody(Strict):
    task: TaskFields
    data: Annotated[str, Field(max_length=MAX_BODY_BYTES)]  # the JSONL records themselves


def jobs_of(request: Request) -> JobManager:
    jobs = request.app.state.jobs
    if jobs is None:
        raise InvalidRequestError("task", "this server has no model repository to train from")
    return jobs


def model_prefix(owner: str) -> str:
    """What the names of a user's trained models start with: its owner name where that can
    begin a model name as it is ("alice."), else "u-" and a digest of it ("Bob@example" ->
    "u-1f0c...."), so that no two owners share a prefix. Only admins name models freely."""
    if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", owner):
        return f"{owner}."
    return f"u-{hashlib.sha256(owner.encode()).hexdigest()[:12]}."


@router.post("/v1/tasks", status_code=201)
async def submit(request: Request, body: TaskBody) -> dict[str, Any]:
    task = TrainingTask.from_json(body.task.model_dump())
    caps = request.state.capabilities
    caps.check_model(task.model)
    owner = request.state.owner
    prefix = "" if request.state.sees_all else model_prefix(owner)
    submit = functools.partial(jobs_of(request).submit, name_prefix=prefix)
    status = await run_in_threadpool(submit, task, body.data.encode(), owner)
    await run_in_threadpool(audit, request, "task.submit", status.id, "ok", task.model)
    return status.to_json()


@router.get("/v1/tasks")
async def list_tasks(request: Request) -> dict[str, Any]:
    statuses = await run_in_threadpool(jobs_of(request).list, owner_filter(request))
    return {"object": "list", "data": [s.to_json() for s in statuses]}


@router.get("/v1/tasks/{task_id}")
async def get_task(request: Request, task_id: TaskId) -> dict[str, Any]:
    status = await run_in_threadpool(jobs_of(request).status, task_id, owner_filter(request))
    return status.to_json()


@router.get("/v1/tasks/{task_id}/logs")
async def task_logs(
    request: Request, task_id: TaskId, after_step: Annotated[int, Query(ge=0)] = 0
) -> dict[str, Any]:
    entries = await run_in_threadpool(
        jobs_of(request).logs, task_id, owner_filter(request), after_step
    )
    return {"object": "list", "data": entries}


async def _act(request: Request, task_id: str, action: str) -> dict[str, Any]:
    status = await run_in_threadpool(
        getattr(jobs_of(request), action), task_id, owner_filter(request)
    )
    await run_in_threadpool(audit, request, f"task.{action}", task_id)
    return status.to_json()


@router.post("/v1/tasks/{task_id}/cancel")
async def cancel_task(request: Request, task_id: TaskId) -> dict[str, Any]:
    return await _act(request, task_id, "cancel")


@router.post("/v1/tasks/{task_id}/suspend")
async def suspend_task(request: Request, task_id: TaskId) -> dict[str, Any]:
    return await _act(request, task_id, "suspend")


@router.post("/v1/tasks/{task_id}/resume")
async def resume_task(request: Request, task_id: TaskId) -> dict[str, Any]:
    return await _act(request, task_id, "resume")


@router.delete("/v1/tasks/{task_id}")
async def delete_task(request: Request, task_id: TaskId) -> dict[str, Any]:
    await run_in_threadpool(jobs_of(request).delete, task_id, owner_filter(request))
    await run_in_threadpool(audit, request, "task.delete", task_id)
    return {"id": task_id, "object": "task", "deleted": True}
