"""/v1/fs: the file system over HTTP, for the key's owner (its namespace, its agents', and what
others granted it). File contents travel as raw bytes; everything else as JSON.

    PUT    /v1/fs/files/{path}?expected_version=N   body: the content -> {"path", "version"}
    GET    /v1/fs/files/{path}?version=N            the content (X-LLMasOS-Version header)
    DELETE /v1/fs/files/{path}?expected_version=N   a deletion version; ?purge=true drops history
    GET    /v1/fs/stat/{path}  /v1/fs/history/{path}  /v1/fs/diff/{path}?from_version=&to_version=
    POST   /v1/fs/rollback/{path} {"version"}       POST /v1/fs/move {"source", "destination"}
    GET    /v1/fs/list?prefix=                      GET /v1/fs/usage
    GET|POST|DELETE /v1/fs/grants
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from llmasos.errors import InvalidRequestError
from llmasos.server.guards import audit, path_limit
from llmasos.storage.fs import MAX_FILE_BYTES, FileSystemView
from llmasos.storage.paths import (
    MAX_PATH_CHARS,
    NAMESPACE_REGEX,
    PATH_REGEX,
    PREFIX_REGEX,
    Principal,
)

router = APIRouter(prefix="/v1/fs", tags=["files"])

MAX_VERSION = 10**15
PathText = Annotated[str, Field(min_length=1, max_length=MAX_PATH_CHARS, pattern=PATH_REGEX)]
FilePath = Annotated[str, PathParameter(max_length=MAX_PATH_CHARS, pattern=PATH_REGEX)]
Prefix = Annotated[str, Query(max_length=MAX_PATH_CHARS, pattern=PREFIX_REGEX)]
Version = Annotated[int, Field(ge=1, le=MAX_VERSION)]
OptionalVersion = Annotated[int | None, Query(ge=0, le=MAX_VERSION)]
CONTENT = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RollbackBody(Strict):
    version: Version


class MoveBody(Strict):
    source: PathText
    destination: PathText


class GrantBody(Strict):
    prefix: Annotated[str, Field(max_length=MAX_PATH_CHARS, pattern=PREFIX_REGEX)] = ""
    to: Annotated[str, Field(max_length=257, pattern=f"^{NAMESPACE_REGEX}$")]
    mode: Annotated[str, Field(pattern="^(read|write)$")] = "read"


def view_of(request: Request) -> FileSystemView:
    principal = Principal(request.state.owner)
    return request.app.state.storage.files(principal, path_limit(request, principal))


async def call(request: Request, method: str, *args: Any, **kwargs: Any) -> Any:
    """Run a FileSystemView method of the caller's view in a worker thread."""
    return await run_in_threadpool(getattr(view_of(request), method), *args, **kwargs)


@router.put(
    "/files/{path:path}",
    openapi_extra={"requestBody": {"required": False, "content": CONTENT}},
)
async def write_file(
    path: FilePath, request: Request, expected_version: OptionalVersion = None
) -> dict[str, Any]:
    """Store the body as the path's next version (409 when expected_version is stale)."""
    data = await request.body()
    if len(data) > MAX_FILE_BYTES:
        raise InvalidRequestError("data", f"must be at most {MAX_FILE_BYTES} bytes")
    version = await call(request, "write", path, data, expected_version=expected_version)
    return {"path": path, "version": version}


@router.get("/files/{path:path}", responses={200: {"content": CONTENT}})
async def read_file(
    path: FilePath,
    request: Request,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> Response:
    data, info = await call(request, "read_with_info", path, version=version)
    headers = {"X-LLMasOS-Version": str(info.version)}
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.delete("/files/{path:path}")
async def delete_file(
    path: FilePath,
    request: Request,
    expected_version: OptionalVersion = None,
    purge: bool = False,
) -> dict[str, Any]:
    """Delete as a new version (rollback restores it), or with purge=true remove the path and
    its whole history (the owner only); either only from expected_version when given."""
    if purge:
        freed = await call(request, "purge", path, expected_version)
        return {"path": path, "freed_bytes": freed}
    version = await call(request, "delete", path, expected_version=expected_version)
    return {"path": path, "version": version}


@router.get("/stat/{path:path}")
async def stat_file(path: FilePath, request: Request) -> dict[str, Any]:
    return (await call(request, "stat", path)).to_json()


@router.get("/history/{path:path}")
async def file_history(path: FilePath, request: Request) -> dict[str, Any]:
    return {"object": "list", "data": [v.to_json() for v in await call(request, "history", path)]}


@router.get("/diff/{path:path}")
async def file_diff(
    path: FilePath,
    request: Request,
    from_version: Annotated[int, Query(ge=1, le=MAX_VERSION)],
    to_version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> dict[str, Any]:
    return {"diff": await call(request, "diff", path, from_version, to_version)}


@router.post("/rollback/{path:path}")
async def rollback_file(path: FilePath, body: RollbackBody, request: Request) -> dict[str, Any]:
    return {"path": path, "version": await call(request, "rollback", path, body.version)}


@router.post("/move")
async def move_file(body: MoveBody, request: Request) -> dict[str, Any]:
    version = await call(request, "move", body.source, body.destination)
    return {"path": body.destination, "version": version}


@router.get("/list")
async def list_files(request: Request, prefix: Prefix = "") -> dict[str, Any]:
    return {"object": "list", "data": [f.to_json() for f in await call(request, "list", prefix)]}


@router.get("/usage")
async def usage(request: Request) -> dict[str, Any]:
    used = await call(request, "usage")
    quota = request.app.state.storage.fs.quota_bytes
    return {"owner": request.state.owner, "bytes": used, "quota_bytes": quota}


@router.get("/grants")
async def list_grants(request: Request, prefix: Prefix = "") -> dict[str, Any]:
    return {"object": "list", "data": [g.to_json() for g in await call(request, "grants", prefix)]}


@router.post("/grants")
async def grant(body: GrantBody, request: Request) -> dict[str, Any]:
    grant = await call(request, "grant", body.prefix, body.to, body.mode)
    where = f"~{grant.namespace}/{grant.prefix}"
    detail = f"{grant.grantee} {body.mode}"
    await run_in_threadpool(audit, request, "fs.granted", where, "ok", detail)
    return grant.to_json()


@router.delete("/grants")
async def revoke(
    request: Request,
    to: Annotated[str, Query(max_length=257, pattern=f"^{NAMESPACE_REGEX}$")],
    prefix: Prefix = "",
) -> dict[str, Any]:
    revoked = await call(request, "revoke", prefix, to)
    await run_in_threadpool(audit, request, "fs.revoked", prefix, "ok" if revoked else "none", to)
    return {"revoked": revoked}
