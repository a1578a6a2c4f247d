"""Runs batches in the background: each line is sent, in-process, to the same completion route a
client would call, as the batch's creator (its owner and its key's capabilities; a revoked key
stops its batches), at background priority unless the line sets one. The fair policy shares
the engine between owners and, within an owner, runs its interactive requests first.

Each answer is committed as it arrives; a batch interrupted by a restart resumes with the
lines that have none, so no line is lost or answered twice. When every line is answered (or
the batch was cancelled: the lines in flight finish, no new one starts) the output and error
files are written and the batch completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from llmasos.errors import AuthenticationError
from llmasos.jobs.batch_lines import BatchLine, output_line, parse_lines
from llmasos.jobs.batch_store import BatchStore
from llmasos.server import openai_api
from llmasos.server.errors import install_error_handlers
from llmasos.server.guards import UNLIMITED

logger = logging.getLogger(__name__)

BATCH_PRIORITY = -100
CONCURRENCY = 16  # lines in flight per batch (the default slot count)
BATCH_HEADER = "x-llmasos-batch"
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")


def internal_app(app: FastAPI, store: BatchStore) -> FastAPI:
    """The completion routes, reachable only in-process, with the batch's creator as caller."""

    async def as_creator(request: Request) -> None:
        owner, key_id = await run_in_threadpool(store.identity, request.headers[BATCH_HEADER])
        request.state.owner, request.state.key_id = owner, key_id
        request.state.admin = request.state.sees_all = False
        request.state.capabilities = UNLIMITED
        if key_id is not None:
            keys = await run_in_threadpool(app.state.access.keys.list)
            info = next((k for k in keys if k.id == key_id and k.active), None)
            if info is None:
                raise AuthenticationError(f"the batch's key {key_id} was revoked or expired")
            request.state.capabilities = info.capabilities

    internal = FastAPI()
    internal.state = app.state
    internal.include_router(openai_api.router, dependencies=[Depends(as_creator)])
    install_error_handlers(internal)
    return internal


class BatchRunner:
    def __init__(self, app: FastAPI, store: BatchStore) -> None:
        self.store = store
        self._app = internal_app(app, store)
        self._wake = asyncio.Event()
        self._cancelled: set[str] = set()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self, batch_id: str) -> None:
        self._cancelled.add(batch_id)

    async def run_forever(self) -> None:
        transport = httpx.ASGITransport(app=self._app, raise_app_exceptions=False)  # a 500
        async with httpx.AsyncClient(transport=transport, base_url="http://batch") as client:
            while True:
                self._wake.clear()
                for batch in await run_in_threadpool(self.store.batches):
                    if batch["status"] in ACTIVE:
                        try:
                            await self._run(client, batch)
                        except Exception:  # one broken batch must not stop the others
                            logger.exception("batch %s failed", batch["id"])
                            await self._fail(batch["id"])
                await self._wait()

    async def _wait(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=5.0)

    async def _run(self, client: httpx.AsyncClient, batch: dict[str, Any]) -> None:
        batch_id = batch["id"]
        owner, _ = await run_in_threadpool(self.store.identity, batch_id)
        data = await run_in_threadpool(self.store.content, owner, batch["input_file_id"])
        lines = parse_lines(data, batch["endpoint"])
        if batch["status"] == "cancelling":
            self._cancelled.add(batch_id)
        if batch["status"] == "validating":
            await self._set(batch_id, status="in_progress", in_progress_at=int(time.time()))
        done = await run_in_threadpool(self.store.results, batch_id)
        gate = asyncio.Semaphore(CONCURRENCY)

        async def answer(item: BatchLine) -> None:
            async with gate:
                if batch_id in self._cancelled:
                    return
                reply = await self._send(client, batch["endpoint"], batch_id, item)
                await run_in_threadpool(
                    self.store.add_result, batch_id, item.line, reply.status_code, reply.text
                )

        await asyncio.gather(*(answer(item) for item in lines if item.line not in done))
        await self._finish(batch_id, owner, lines)

    async def _send(
        self, client: httpx.AsyncClient, endpoint: str, batch_id: str, item: BatchLine
    ) -> httpx.Response:
        """One line's answer; a 429 (the creator's token rate, a full kernel) is waited out."""
        body = {"priority": BATCH_PRIORITY, **item.body}
        while True:
            reply = await client.post(
                endpoint, json=body, headers={BATCH_HEADER: batch_id}, timeout=None
            )
            if reply.status_code != 429 or batch_id in self._cancelled:
                return reply
            await asyncio.sleep(float(reply.headers.get("retry-after", "1")))

    async def _finish(self, batch_id: str, owner: str, lines: list[BatchLine]) -> None:
        """Write the output and error files; the batch completes (or is cancelled)."""
        await self._set(batch_id, status="finalizing", finalizing_at=int(time.time()))
        results = await run_in_threadpool(self.store.results, batch_id)
        output, failed = [], []
        for item in lines:
            if item.line in results:
                status, body = results[item.line]
                (output if status < 400 else failed).append(
                    output_line(batch_id, item, status, body)
                )
        files = {}
        for field, rows, kind in (
            ("output_file_id", output, "output"),
            ("error_file_id", failed, "error"),
        ):
            if rows:
                data = ("\n".join(rows) + "\n").encode()
                record = await run_in_threadpool(
                    self.store.add_file, owner, f"{batch_id}_{kind}.jsonl", "batch_output", data
                )
                files[field] = record.id
        cancelled = batch_id in self._cancelled
        ended = "cancelled" if cancelled else "completed"
        counts = {"total": len(lines), "completed": len(output), "failed": len(failed)}
        await self._set(
            batch_id, status=ended, request_counts=counts, **{f"{ended}_at": int(time.time())},
            **files,
        )  # fmt: skip
        self._cancelled.discard(batch_id)

    async def _fail(self, batch_id: str) -> None:
        await self._set(batch_id, status="failed", failed_at=int(time.time()))

    async def _set(self, batch_id: str, **fields: Any) -> None:
        await run_in_threadpool(lambda: self.store.update(batch_id, **fields))
