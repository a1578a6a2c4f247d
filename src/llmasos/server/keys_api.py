"""Administrative routes for API keys and the audit log (the admin key or an admin-role key).

POST   /v1/admin/keys            {"owner", "role", "expires_in_s", "capabilities"} -> the
                                 key, shown once
GET    /v1/admin/keys            every key's record (never a secret)
DELETE /v1/admin/keys/{key_id}   revoke
GET    /v1/admin/audit?after=&limit=   entries of the audit log
GET    /v1/admin/audit/verify    {"intact": bool, "problem": str | null}
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParameter
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from llmasos.server.agent_schemas import CapabilitiesBody
from llmasos.server.fs_api import Strict
from llmasos.server.guards import audit
from llmasos.storage.paths import NAME_REGEX

router = APIRouter(prefix="/v1/admin", tags=["admin"])
KeyId = Annotated[str, PathParameter(pattern="^[0-9a-f]{12}$")]


class KeyBody(Strict):
    owner: Annotated[str, Field(pattern=f"^{NAME_REGEX}$")]
    role: Annotated[str, Field(pattern="^(admin|user|read-only)$")] = "user"
    expires_in_s: Annotated[int | None, Field(ge=1, le=10 * 365 * 86400)] = None
    capabilities: CapabilitiesBody | None = None


@router.post("/keys", status_code=201)
async def create_key(body: KeyBody, request: Request) -> dict[str, Any]:
    keys = request.app.state.access.keys
    caps = body.capabilities.capabilities() if body.capabilities else None
    key, info = await run_in_threadpool(keys.create, body.owner, body.role, body.expires_in_s, caps)
    detail = f"{info.owner} {info.role.value}"
    await run_in_threadpool(audit, request, "key.created", info.id, "ok", detail)
    return {"key": key, **info.to_json()}


@router.get("/keys")
async def list_keys(request: Request) -> dict[str, Any]:
    keys = await run_in_threadpool(request.app.state.access.keys.list)
    return {"object": "list", "data": [key.to_json() for key in keys]}


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: KeyId, request: Request) -> dict[str, Any]:
    info = await run_in_threadpool(request.app.state.access.keys.revoke, key_id)
    await run_in_threadpool(audit, request, "key.revoked", key_id)
    return info.to_json()


@router.get("/audit")
async def audit_entries(
    request: Request,
    after: Annotated[int, Query(ge=0, le=10**15)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    entries = await run_in_threadpool(request.app.state.audit.entries, after, limit)
    return {"object": "list", "data": [entry.to_json() for entry in entries]}


@router.get("/audit/verify")
async def audit_verify(request: Request) -> dict[str, Any]:
    problem = await run_in_threadpool(request.app.state.audit.verify)
    return {"intact": problem is None, "problem": problem}
