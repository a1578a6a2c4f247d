"""/v1/agent-memory: the agent memory of the key's owner (?agent=NAME for one of its agents'):
core blocks, the recall log, archival entries, and search by meaning."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParameter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from llmasos.server.fs_api import Strict
from llmasos.server.guards import path_limit
from llmasos.storage.agent_memory import (
    MAX_CORE_CHARS,
    MAX_ENTRY_KEY,
    MAX_SEARCH_K,
    MAX_TEXT_CHARS,
    ROLES,
    AgentMemory,
)
from llmasos.storage.paths import MAX_PATH_CHARS, NAME_REGEX, PATH_REGEX, Principal

router = APIRouter(prefix="/v1/agent-memory", tags=["agent memory"])

AgentName = Annotated[
    str | None,
    Query(
        pattern=f"^{NAME_REGEX}$",
        description="One of the owner's agents (default: the owner's own memory)",
    ),
]
EntryKey = Annotated[int, Field(ge=1, le=MAX_ENTRY_KEY)]
Label = Annotated[str, PathParameter(pattern=f"^{NAME_REGEX}$")]
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]


class CoreBody(Strict):
    text: Annotated[str, Field(max_length=MAX_CORE_CHARS)]


class TextBody(Strict):
    text: Text


class LogBody(Strict):
    role: Annotated[str, Field(pattern="^(" + "|".join(ROLES) + ")$")]
    text: Text


class IndexBody(Strict):
    path: Annotated[str, Field(max_length=MAX_PATH_CHARS, pattern=PATH_REGEX)]


class ForgetBody(Strict):
    keys: Annotated[list[EntryKey], Field(min_length=1, max_length=1000)]
    tier: Annotated[str, Field(pattern="^(archival|recall)$")] = "archival"


class SearchBody(Strict):
    query: Text
    k: Annotated[int, Field(ge=1, le=MAX_SEARCH_K)] = 5
    tier: Annotated[str, Field(pattern="^(archival|recall)$")] = "archival"


def memory_of(request: Request, agent: str | None) -> AgentMemory:
    principal = Principal(request.state.owner, agent)
    return request.app.state.memory_of(principal, path_limit(request, principal))


async def call(request: Request, agent: str | None, method: str, *args: Any, **kw: Any) -> Any:
    caps = request.state.capabilities
    if caps.read is not None or caps.write is not None:
        principal = Principal(request.state.owner, agent)
        caps.resolved(Principal(principal.owner)).check_memory(principal, method, len(args))
    memory = await run_in_threadpool(memory_of, request, agent)
    return await run_in_threadpool(getattr(memory, method), *args, **kw)


@router.get("/core")
async def core(request: Request, agent: AgentName = None) -> dict[str, Any]:
    return {"core": await call(request, agent, "core")}


@router.put("/core/{label}")
async def set_core(
    label: Label, body: CoreBody, request: Request, agent: AgentName = None
) -> dict[str, Any]:
    """Set a core block (an empty text removes it)."""
    return {"core": await call(request, agent, "core", label, body.text)}


@router.post("/archival")
async def store(body: TextBody, request: Request, agent: AgentName = None) -> dict[str, Any]:
    return (await call(request, agent, "store", body.text)).to_json()


@router.post("/recall")
async def log(body: LogBody, request: Request, agent: AgentName = None) -> dict[str, Any]:
    return (await call(request, agent, "log", body.role, body.text)).to_json()


@router.get("/recall")
async def recall(
    request: Request,
    agent: AgentName = None,
    first_seq: Annotated[int, Query(ge=1, le=10**15)] = 1,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    items = await call(request, agent, "recall", first_seq, limit)
    return {"object": "list", "data": [item.to_json() for item in items]}


@router.post("/search")
async def search(body: SearchBody, request: Request, agent: AgentName = None) -> dict[str, Any]:
    items = await call(request, agent, "search", body.query, body.k, tier=body.tier)
    return {"object": "list", "data": [item.to_json() for item in items]}


@router.post("/index")
async def index(body: IndexBody, request: Request, agent: AgentName = None) -> dict[str, Any]:
    """Chunk a text file (as the caller reads it) into archival entries, once per version."""
    return (await call(request, agent, "index", body.path)).to_json()


@router.post("/forget")
async def forget(body: ForgetBody, request: Request, agent: AgentName = None) -> dict[str, Any]:
    """Delete entries by key (freeing their quota); how many there were."""
    return {"forgotten": await call(request, agent, "forget", body.keys, tier=body.tier)}
