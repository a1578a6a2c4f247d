"""The HTTP server: the model manager's kernels behind OpenAI-compatible and native routes."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from llmasos.agents.runtime import AgentRuntime
from llmasos.auth.audit import AuditLog
from llmasos.auth.keys import KeyStore
from llmasos.jobs.batch_store import BatchStore
from llmasos.jobs.job_manager import JobManager
from llmasos.jobs.throttle import Throttle
from llmasos.models.import_policy import ImportPolicy
from llmasos.runtime.embedding import manager_embed
from llmasos.runtime.manager import ModelManager
from llmasos.runtime.model_calls import ManagerModelCalls
from llmasos.security.privacy import PrivateRelease
from llmasos.server import (
    admin_api,
    agents_api,
    audio_api,
    batches_api,
    embeddings_api,
    fs_api,
    keys_api,
    memory_api,
    native_api,
    openai_api,
    shell_api,
    tasks_api,
    watch_api,
)
from llmasos.server.api_docs import (
    ADMIN_ERRORS,
    OPENAI_ERRORS,
    PROCESS_ERRORS,
    STORAGE_ERRORS,
    errors,
)
from llmasos.server.batch_runner import BatchRunner, mount_for_cluster
from llmasos.server.cluster_link import ClusterLink
from llmasos.server.dashboard_pages import mount_dashboard
from llmasos.server.errors import install_error_handlers
from llmasos.server.guards import MAX_BODY_BYTES, Access, BodyLimit, guards
from llmasos.server.metrics import ServerMetrics
from llmasos.server.rate_limits import RateLimiter, RateLimits
from llmasos.server.telemetry import RequestTelemetry
from llmasos.server.usage_release import STATS_EPSILON, STATS_WINDOW_S
from llmasos.storage.service import Storage
from llmasos.tools.builtins import builtin_tools
from llmasos.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

REAP_INTERVAL_S = 5.0

__all__ = ["Access", "create_app"]


def create_app(
    models: ModelManager,
    *,
    access: Access | None = None,
    imports: ImportPolicy | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    storage: Storage | None = None,
    rate_limits: RateLimits | None = None,
    job_cpu_share: float = 0.0,
    cluster: ClusterLink | None = None,
) -> FastAPI:
    """An ASGI app serving the models of `models`. With `access.api_keys`, every route but
    /health needs `Authorization: Bearer <key>`; the administrative routes need
    `access.admin_key` and are off without one. `imports` says what an HTTP import may read
    (default: https from public addresses, no local paths, no packages). `storage` holds the
    file system and agent memory (default: opened from the settings). A training job gets
    `job_cpu_share` of the CPU while interactive requests run (jobs/throttle.py). A cluster
    replica has its `cluster` link (batches, cluster_link.py). The models are unloaded and
    the storage closed when the app shuts down."""
    storage = storage or Storage.from_settings()
    access = access or Access()
    if access.keys is None:  # the stored keys (llmasos keys create) always count
        access = dataclasses.replace(access, keys=KeyStore(storage))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def reap() -> None:  # unload models whose keep-alive ran out
            while True:
                await asyncio.sleep(REAP_INTERVAL_S)
                try:
                    await run_in_threadpool(models.reap_idle)
                except Exception:  # the reaper must outlive one bad unload
                    logger.exception("unloading idle models failed")

        reaper = asyncio.create_task(reap())
        batches = asyncio.create_task(app.state.batch_runner.run_forever())
        yield
        reaper.cancel()
        batches.cancel()
        if app.state.jobs is not None:  # the running job checkpoints and waits for the next start
            await run_in_threadpool(app.state.jobs.close)
        await run_in_threadpool(app.state.agents.close)
        await run_in_threadpool(models.close)
        await run_in_threadpool(app.state.storage.close)

    app = FastAPI(title="LLMasOS", version="0.1.0", lifespan=lifespan)
    app.state.models = models
    app.state.imports = imports or ImportPolicy.for_server()
    app.state.started_at = int(time.time())
    buckets = cluster.rate_buckets if cluster is not None else None
    _add_security(app, access, storage, RateLimiter(rate_limits or RateLimits(), buckets))
    _add_services(app, models, storage, cluster)
    app.state.jobs = _job_manager(models, job_cpu_share, storage.config.master_key)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.state.metrics = ServerMetrics(models)
    app.add_middleware(RequestTelemetry, metrics=app.state.metrics)
    protected, admin = guards(access, app.state.rate_limiter)
    _add_routes(app, protected, admin)
    return app


def _add_security(app: FastAPI, access: Access, storage: Storage, limiter: RateLimiter) -> None:
    """Keys, rate limits, the audit log (key logins included) and the private usage release."""
    app.state.access = access
    app.state.rate_limiter = limiter
    audit_log = app.state.audit = AuditLog(storage)
    if access.keys is not None:
        access.keys.on_login = lambda info: audit_log.append(
            "key.login", f"{info.owner} (key {info.id})", "api", "ok", info.role.value
        )
    app.state.usage_release = PrivateRelease(STATS_EPSILON, STATS_WINDOW_S)


def _add_services(
    app: FastAPI, models: ModelManager, storage: Storage, cluster: ClusterLink | None
) -> None:
    """The services the routes reach through app.state: storage, agents, agent memory."""
    app.state.storage = storage
    embed = manager_embed(models)
    app.state.agents = AgentRuntime(
        ManagerModelCalls(models, "local"),
        ToolRegistry(builtin_tools()),
        models.pids,
        storage=storage,
        embed=embed,
    )
    app.state.memory_of = lambda principal, limit: storage.memory(principal, embed, limit)
    app.state.batch_store = BatchStore(storage)
    app.state.batch_runner = BatchRunner(app, app.state.batch_store, cluster)
    if cluster is not None:
        mount_for_cluster(app, app.state.batch_store, cluster)


def _job_manager(models: ModelManager, share: float, master_key: bytes | None) -> JobManager | None:
    """Training jobs over the models' repository (none without one), paused but for `share`
    while a process of priority >= 0 is live, their data sealed with `master_key`."""
    repository = models.repository
    if repository is None:
        return None

    def interactive() -> bool:
        return any(p.alive and p.priority >= 0 for p in models.processes())

    throttle = Throttle(interactive, share)
    return JobManager(
        repository.root.parent, repository, pids=models.pids, throttle=throttle,
        master_key=master_key,
    )  # fmt: skip


def _add_routes(app: FastAPI, protected: list, admin: list) -> None:
    """Every router, behind its guards, with its documented error responses."""
    for router, dependencies, codes in (
        (openai_api.router, protected, OPENAI_ERRORS),
        (embeddings_api.router, protected, OPENAI_ERRORS),
        (audio_api.router, protected, OPENAI_ERRORS),
        (watch_api.router, protected, PROCESS_ERRORS),
        (shell_api.router, protected, PROCESS_ERRORS),
        (native_api.router, protected, PROCESS_ERRORS),
        (agents_api.router, protected, PROCESS_ERRORS),
        (fs_api.router, protected, STORAGE_ERRORS),
        (batches_api.router, protected, STORAGE_ERRORS),
        (tasks_api.router, protected, STORAGE_ERRORS),
        (memory_api.router, protected, STORAGE_ERRORS),
        (admin_api.router, admin, ADMIN_ERRORS),
        (keys_api.router, admin, ADMIN_ERRORS),
    ):
        app.include_router(router, dependencies=dependencies, responses=errors(codes))
    app.include_router(native_api.open_router, responses=errors([500]))
    mount_dashboard(app)  # pages and their files: no data in them, so no key
