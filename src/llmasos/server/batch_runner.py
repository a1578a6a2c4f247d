"""Runs batches in the background. Each line is sent, in-process, to the same completion route a
client would call, as the batch's creator: its owner, its key's capabilities and request and
token rates (a rate's 429 is waited out), at priority BATCH_PRIORITY at most, CONCURRENCY
lines at a time. Owners' batches run side by side, one batch per owner at a time, oldest first;
the fair policy shares the engine between owners and runs an owner's interactive requests
before its batch lines. A revoked or expired key fails its batch at the next line.

Each answer is committed as it arrives (jobs/batch_store.py); a batch interrupted by a restart
resumes with the lines that have none. A line that cannot be answered (a refused request, an
error the server keeps answering after retries) gets its error as its answer, in the error
file. Cancelling stops new lines from starting; the batch ends cancelled with what it
answered. When its completion window (24 h) runs out first, no new line starts and it ends
expired, with what it answered.

On a cluster replica (`link`), the runner waits until the pool makes its replica the one that
leads batches, and sends each line through the front instead, which routes it to any replica's
INTERNAL_PREFIX routes: a batch is split across the replicas (server/cluster_link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from llmasos.auth.keys import Role
from llmasos.errors import AuthenticationError
from llmasos.jobs.batch_lines import BatchLine, BatchStatus
from llmasos.jobs.batch_store import BatchStore
from llmasos.server import openai_api
from llmasos.server.cluster_link import INTERNAL_PREFIX, TOKEN_HEADER, ClusterLink, member_only
from llmasos.server.errors import install_error_handlers
from llmasos.server.guards import UNLIMITED, caller_of, confine_models

logger = logging.getLogger(__name__)

BATCH_PRIORITY = -100
CONCURRENCY = 16  # lines in flight per batch (the default slot count)
BATCH_HEADER = "x-llmasos-batch"
RETRIED = {"rate_limited", "too_many_processes"}  # 429s that pass with time
MAX_UNAVAILABLE_RETRIES = 5  # 503s (a model loading, the memory budget) before giving up
RESCAN_S = 5.0
LEAD_POLL_S = 1.0


class KeyRevoked(Exception):
    """The batch's key was revoked or expired: the batch fails."""


def creator_of(app: FastAPI, store: BatchStore) -> Callable[[Request], Awaitable[None]]:
    """The dependency that makes the batch named in BATCH_HEADER's creator the caller: its
    owner, its key's capabilities (a revoked or expired key: 401) and its request rate."""

    async def as_creator(request: Request) -> None:
        batch_id = request.headers.get(BATCH_HEADER)
        if batch_id is None:
            raise AuthenticationError(f"a batch line needs its batch's id in {BATCH_HEADER}")
        owner, key_id = await run_in_threadpool(store.identity, batch_id)
        request.state.owner, request.state.key_id = owner, key_id
        request.state.admin = request.state.sees_all = False
        request.state.capabilities = UNLIMITED
        if key_id is not None:
            info = await run_in_threadpool(app.state.access.keys.record, key_id)
            if info is None or not info.active:
                raise AuthenticationError(f"the batch's key {key_id} was revoked or expired")
            request.state.capabilities = info.capabilities
            request.state.sees_all = info.role is Role.ADMIN  # an admin's lines: every model
        confine_models(request, app.state.models.repository)
        await app.state.rate_limiter.admit(caller_of(request))

    return as_creator


def internal_app(app: FastAPI, store: BatchStore) -> FastAPI:
    """The completion routes, reachable only in-process, with the batch's creator as caller."""
    internal = FastAPI()
    internal.state = app.state
    internal.include_router(openai_api.router, dependencies=[Depends(creator_of(app, store))])
    install_error_handlers(internal)
    return internal


def mount_for_cluster(app: FastAPI, store: BatchStore, link: ClusterLink) -> None:
    """The completion routes under INTERNAL_PREFIX, for batch lines the front routes here:
    the cluster's token, then the batch's creator as caller."""
    checks = [Depends(member_only(link)), Depends(creator_of(app, store))]
    app.include_router(
        openai_api.router, prefix=INTERNAL_PREFIX, dependencies=checks, include_in_schema=False
    )


class BatchRunner:
    def __init__(self, app: FastAPI, store: BatchStore, link: ClusterLink | None = None) -> None:
        """Runs the batches of `store`. With `link` (a cluster replica) it waits until the
        pool makes it the one replica that leads batches, and sends lines through the front."""
        self.store = store
        self._app = internal_app(app, store)
        self._link = link
        self._leading = threading.Event()  # set from the pool's thread (lead())
        if link is None:
            self._leading.set()
        self._wake = asyncio.Event()
        self._cancelled: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}  # owner -> its batch's task

    def lead(self) -> None:
        """Start running batches (a cluster replica, chosen by the pool)."""
        self._leading.set()

    def wake(self) -> None:
        self._wake.set()

    def _client(self) -> httpx.AsyncClient:
        """In-process to this server's routes; a cluster replica's through the front."""
        if self._link is None:
            transport = httpx.ASGITransport(app=self._app, raise_app_exceptions=False)  # a 500
            return httpx.AsyncClient(transport=transport, base_url="http://batch")
        return httpx.AsyncClient(
            base_url=self._link.front_url + INTERNAL_PREFIX,
            headers={TOKEN_HEADER: self._link.token},
            timeout=httpx.Timeout(None, connect=10.0),
        )

    def cancel(self, batch_id: str) -> None:
        self._cancelled.add(batch_id)

    async def run_forever(self) -> None:
        while not self._leading.is_set():
            await asyncio.sleep(LEAD_POLL_S)
        async with self._client() as client:
            while True:
                self._wake.clear()
                try:
                    await self._start_batches(client)
                except Exception:  # the runner must outlive one bad scan
                    logger.exception("scanning the batches failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=RESCAN_S)

    async def _start_batches(self, client: httpx.AsyncClient) -> None:
        """Start the oldest active batch of each owner that runs none."""
        for batch_id, owner in await run_in_threadpool(self.store.active):
            if owner not in self._running:
                task = asyncio.create_task(self._run_guarded(client, batch_id, owner))
                self._running[owner] = task

    async def _run_guarded(self, client: httpx.AsyncClient, batch_id: str, owner: str) -> None:
        try:
            await self._run(client, batch_id, owner)
        except KeyRevoked as error:
            await self._end(batch_id, owner, BatchStatus.FAILED, ("key_revoked", str(error)))
        except Exception as error:  # one broken batch must not stop the others
            logger.exception("batch %s failed", batch_id)
            await self._end(batch_id, owner, BatchStatus.FAILED, ("failed", str(error)))
        finally:
            self._running.pop(owner, None)
            self.wake()  # the owner's next batch, if any

    async def _run(self, client: httpx.AsyncClient, batch_id: str, owner: str) -> None:
        batch = await run_in_threadpool(self.store.batch, owner, batch_id)
        if batch["status"] == BatchStatus.CANCELLING:
            self._cancelled.add(batch_id)
        fields = {"status": BatchStatus.IN_PROGRESS, "in_progress_at": int(time.time())}
        await self._set(batch_id, (BatchStatus.VALIDATING,), fields)
        lines = await run_in_threadpool(
            self.store.requests, owner, batch["input_file_id"], batch["endpoint"]
        )
        answered = await run_in_threadpool(self.store.answered, batch_id)
        pending = iter([item for item in lines if item.line not in answered])

        async def worker() -> None:
            for item in pending:  # shared: each line is taken by one worker
                if batch_id in self._cancelled or time.time() >= batch["expires_at"]:
                    return
                status, body = await self._answer(client, batch["endpoint"], batch_id, item)
                await run_in_threadpool(
                    self.store.add_result, owner, batch_id, item.line, item.custom_id, status,
                    body,
                )  # fmt: skip

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        answered = await run_in_threadpool(self.store.answered, batch_id)
        if len(answered) < len(lines) and time.time() >= batch["expires_at"]:
            window = ("expired", "the completion window ran out before every line was answered")
            await self._end(batch_id, owner, BatchStatus.EXPIRED, window)
            return
        await self._end(batch_id, owner, None, None)

    async def _answer(
        self, client: httpx.AsyncClient, endpoint: str, batch_id: str, item: BatchLine
    ) -> tuple[int, str]:
        """(status, body) of one line: a rate's 429 is waited out, a 503 retried a few times,
        anything else is the answer."""
        body = {**item.body, "priority": _priority(item.body.get("priority"))}
        unavailable, delays = 0, _backoff()
        while True:
            try:
                reply = await client.post(
                    endpoint, json=body, headers={BATCH_HEADER: batch_id}, timeout=None
                )
            except httpx.HTTPError as error:  # nothing came back from the route at all
                return 500, json.dumps({"error": {"message": f"the line failed: {error}"}})
            if reply.status_code == 401:
                raise KeyRevoked(_message(reply))
            if reply.status_code == 429 and _code(reply) in RETRIED:
                await asyncio.sleep(float(reply.headers.get("retry-after", "1")))
                continue
            if reply.status_code == 503 and unavailable < MAX_UNAVAILABLE_RETRIES:
                unavailable += 1
                await asyncio.sleep(next(delays))
                continue
            return reply.status_code, reply.text

    async def _end(
        self, batch_id: str, owner: str, ending: BatchStatus | None, error: tuple | None
    ) -> None:
        """Finalize: the output and error files, then completed (cancelled if a cancel came
        first; `ending` when given, with `error` in the batch's errors)."""
        moved = await self._set(
            batch_id,
            (BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING, BatchStatus.FINALIZING),
            {"status": BatchStatus.FINALIZING, "finalizing_at": int(time.time())},
        )
        if moved is None:
            return  # ended already
        files = await run_in_threadpool(self.store.add_output_files, owner, batch_id)
        answered, failed = await run_in_threadpool(self.store.counts, batch_id)
        if ending is None:
            cancelled = moved[0] == BatchStatus.CANCELLING or batch_id in self._cancelled
            ending = BatchStatus.CANCELLED if cancelled else BatchStatus.COMPLETED
        counts = {**moved[1]["request_counts"], "completed": answered - failed, "failed": failed}
        errors = None
        if error is not None:
            errors = {"object": "list", "data": [{"code": error[0], "message": error[1]}]}
        fields = {"status": ending, f"{ending}_at": int(time.time()), "request_counts": counts,
                  "errors": errors, **files}  # fmt: skip
        await self._set(batch_id, (BatchStatus.FINALIZING,), fields)
        self._cancelled.discard(batch_id)

    async def _set(
        self, batch_id: str, states: tuple[BatchStatus, ...], fields: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        return await run_in_threadpool(lambda: self.store.transition(batch_id, states, **fields))


def _priority(given: object) -> object:
    """A line's priority, at most BATCH_PRIORITY (a value that is no integer is left for the
    route to refuse)."""
    if given is None:
        return BATCH_PRIORITY
    if isinstance(given, int) and not isinstance(given, bool):
        return min(given, BATCH_PRIORITY)
    return given


def _backoff() -> Iterator[float]:
    delay = 1.0
    while True:
        yield delay
        delay = min(delay * 2, 30.0)


def _code(reply: httpx.Response) -> str | None:
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        return reply.json()["error"]["code"]
    return None


def _message(reply: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        return str(reply.json()["error"]["message"])
    return reply.text[:200]
