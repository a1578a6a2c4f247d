"""The HTTP server: one kernel behind OpenAI-compatible and native routes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from llmasos.models.manager import ModelManager
from llmasos.server import native_api, openai_api
from llmasos.server.errors import APIError, error_response, install_error_handlers

MAX_BODY_BYTES = 8 * 1024 * 1024
REAP_INTERVAL_S = 5.0


def key_owner(key: str) -> str:
    """The owner name recorded for processes spawned with an API key (never the key itself)."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def create_app(models: ModelManager, *, api_keys: Sequence[str] = ()) -> FastAPI:
    """An ASGI app serving the models of `models`. With api_keys, every route but /health
    needs `Authorization: Bearer <key>`. The models are unloaded when the app shuts down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def reap() -> None:  # unload models whose keep-alive ran out
            while True:
                await asyncio.sleep(REAP_INTERVAL_S)
                await run_in_threadpool(models.reap_idle)

        reaper = asyncio.create_task(reap())
        yield
        reaper.cancel()
        models.close()

    async def authenticate(request: Request) -> None:
        request.state.owner = "anonymous"
        if not api_keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(token, k) for k in api_keys):
            raise APIError(
                401,
                "missing or invalid API key; send Authorization: Bearer <key>",
                kind="authentication_error",
                code="invalid_api_key",
            )
        request.state.owner = key_owner(token)

    app = FastAPI(title="LLMasOS", version="0.1.0", lifespan=lifespan)
    app.state.models = models
    app.state.started_at = int(time.time())
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return error_response(
                413,
                f"request body over the limit of {MAX_BODY_BYTES} bytes",
                kind="invalid_request_error",
                code="body_too_large",
            )
        return await call_next(request)

    protected = [Depends(authenticate)]
    app.include_router(openai_api.router, dependencies=protected)
    app.include_router(native_api.router, dependencies=protected)
    app.include_router(native_api.open_router)
    return app
