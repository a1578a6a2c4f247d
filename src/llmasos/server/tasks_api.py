"""Training jobs over HTTP (the caller's own only; admins see all):

POST /v1/tasks                      {"task": TrainingTask fields, "data": "<the JSONL records>"}
GET  /v1/tasks                      the caller's jobs
GET  /v1/tasks/{task_id}            one job's status: state, progress, step, loss, epsilon, ...
GET  /v1/tasks/{task_id}/logs       its step log (?after_step=N for the steps past N)
POST /v1/tasks/{task_id}/cancel     stop it for good (after its step under way)
POST /v1/tasks/{task_id}/suspend    stop it at a checkpoint
POST /v1/tasks/{task_id}/resume     queue it again; it goes on from its checkpoint
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParameter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from llmasos.errors import InvalidRequestError
from llmasos.jobs.job_manager import JobManager
from llmasos.jobs.tasks import TrainingTask
from llmasos.server.fs_api import Strict
from llmasos.server.guards import MAX_BODY_BYTES, audit

router = APIRouter(tags=["tasks"])
TaskId = Annotated[str, PathParameter(pattern="^task-[0-9a-f]{16}$")]


class TaskBody(Strict):
    task: dict[str, Any]
    data: Annotated[str, Field(max_length=MAX_BODY_BYTES)]


def jobs_of(request: Request) -> JobManager:
    jobs = request.app.state.jobs
    if jobs is None:
        raise InvalidRequestError("task", "this server has no model repository to train from")
    return jobs


def model_prefix(owner: str) -> str:
    """What the names of a user's trained models start with: its owner name as a model name
    allows ("Bob@example" -> "bob-example."). Only admins name models freely."""
    return re.sub(r"[^a-z0-9._-]", "-", owner.lower())[:40] + "."


def _owner(request: Request) -> str | None:
    """Whose jobs the caller sees: its own, or every one for an admin."""
    return None if request.state.sees_all else request.state.owner


@router.post("/v1/tasks", status_code=201)
async def submit(request: Request, body: TaskBody) -> dict[str, Any]:
    task = TrainingTask.from_json(body.task)
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
    statuses = await run_in_threadpool(jobs_of(request).list, _owner(request))
    return {"object": "list", "data": [s.to_json() for s in statuses]}


@router.get("/v1/tasks/{task_id}")
async def get_task(request: Request, task_id: TaskId) -> dict[str, Any]:
    status = await run_in_threadpool(jobs_of(request).status, task_id, _owner(request))
    return status.to_json()


@router.get("/v1/tasks/{task_id}/logs")
async def task_logs(
    request: Request, task_id: TaskId, after_step: Annotated[int, Query(ge=0)] = 0
) -> dict[str, Any]:
    entries = await run_in_threadpool(jobs_of(request).logs, task_id, _owner(request), after_step)
    return {"object": "list", "data": entries}


@router.post("/v1/tasks/{task_id}/{action}")
async def signal_task(
    request: Request,
    task_id: TaskId,
    action: Annotated[str, PathParameter(pattern="^(cancel|suspend|resume)$")],
) -> dict[str, Any]:
    act = getattr(jobs_of(request), action)
    status = await run_in_threadpool(act, task_id, _owner(request))
    await run_in_threadpool(audit, request, f"task.{action}", task_id)
    return status.to_json()
