"""Administrative routes: they change what the server can run. They need the admin key (the
server is started with --admin-key) and are off without one.

    POST   /v1/models/import        import a model (https from a public address, or a file
                                    under an --import-dir; never pypi:, which runs code)
    DELETE /v1/models/{name}        remove a model from the repository (unloaded first)
    POST   /v1/models/{name}/unload free a loaded model's memory now
The model the server was started with (--model) can be neither deleted nor unloaded.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from llmasos.models.sources import import_model
from llmasos.server.api_docs import ModelNameParameter
from llmasos.server.guards import audit
from llmasos.server.native_api import repository_of
from llmasos.server.openai_api import models_of
from llmasos.server.schemas import ImportRequest

router = APIRouter()


@router.post("/v1/models/import", status_code=201)
async def import_(body: ImportRequest, request: Request) -> dict[str, Any]:
    manifest = await run_in_threadpool(
        import_model,
        repository_of(request),
        body.source,
        body.name,
        sha256=body.sha256,
        policy=request.app.state.imports,
    )
    await run_in_threadpool(audit, request, "model.imported", manifest.name, "ok", body.source)
    return dataclasses.asdict(manifest)


@router.delete("/v1/models/{name}")
def delete_model(name: ModelNameParameter, request: Request) -> dict[str, Any]:
    models = models_of(request)
    models.check_removable(name)
    repository_of(request).check_removable(name)  # before unloading: no adapter is built on it
    if models.is_loaded(name):
        models.unload(name)
    manifest = repository_of(request).remove(name)
    audit(request, "model.deleted", manifest.name)
    return {"id": manifest.name, "object": "model", "deleted": True}


@router.post("/v1/models/{name}/unload")
def unload_model(name: ModelNameParameter, request: Request) -> dict[str, Any]:
    models_of(request).unload(name)
    return {"name": name, "unloaded": True}
