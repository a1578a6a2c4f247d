"""An OpenAI reply, whole or streamed as server-sent events, from the processes serving a request
(one per prompt, and n - 1 forks of each). A client that goes away gets its processes killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from llmasos.errors import EngineError, KernelClosedError, ProcessError
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import FinishReason, Process, Result, Signal, TextPiece
from llmasos.server.events import merged_events
from llmasos.server.openai_format import ChatStyle, CompletionStyle, usage

DISCONNECT_POLL_S = 0.25


def kill_quietly(kernel: Kernel, processes: Sequence[Process]) -> None:
    """Kill whatever is still alive without waiting (for clients that went away)."""
    for process in processes:
        if process.alive:
            with contextlib.suppress(ProcessError, KernelClosedError):  # it ended meanwhile
                kernel.signal(process.pid, Signal.KILL, wait=False)


class Reply:
    def __init__(
        self,
        request: Request,
        kernel: Kernel,
        processes: list[Process],
        parents: list[bool],
        style: CompletionStyle | ChatStyle,
    ) -> None:
        """`parents[i]`: process i answers a prompt itself (not a fork); its prompt counts in
        usage."""
        self.request = request
        self.kernel = kernel
        self.processes = processes
        self.parents = parents
        self.style = style
        self.id = f"{style.id_prefix}-{processes[0].pid}"
        self.created = int(time.time())

    def _envelope(self, object_name: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": object_name,
            "created": self.created,
            "model": self.kernel.engine.info.model_name,
            "choices": choices,
        }

    async def whole(self) -> dict[str, Any]:
        """Wait for every process; a client that disconnects first gets its processes killed."""
        waiter = asyncio.ensure_future(self._results())
        try:
            while not waiter.done():
                await asyncio.wait({waiter}, timeout=DISCONNECT_POLL_S)
                if not waiter.done() and await self.request.is_disconnected():
                    waiter.cancel()
                    break
        finally:
            if not waiter.done():
                waiter.cancel()
            kill_quietly(self.kernel, self.processes)
        results = waiter.result()
        failed = [r for r in results if r.finish_reason is FinishReason.ERROR]
        if failed:
            raise EngineError(failed[0].error or "the engine failed")
        choices = [self.style.whole(i, r) for i, r in enumerate(results)]
        body = self._envelope(self.style.object_name, choices)
        body["usage"] = usage(results, self.parents)
        return body

    async def _results(self) -> list[Result]:
        results: dict[int, Result] = {}
        async for index, event in merged_events(self.processes):
            if isinstance(event, Result):
                results[index] = event
        return [results[i] for i in range(len(self.processes))]

    def stream(self, *, include_usage: bool) -> StreamingResponse:
        return StreamingResponse(
            self._sse(include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _sse(self, include_usage: bool) -> AsyncIterator[str]:
        chunk = f"{self.style.object_name}.chunk"
        results: dict[int, Result] = {}
        try:
            openings = [self.style.opening(i) for i in range(len(self.processes))]
            if any(openings):
                yield _sse(self._envelope(chunk, [o for o in openings if o]))
            async for index, event in merged_events(self.processes):
                if isinstance(event, TextPiece):
                    choice = self.style.piece(index, event.text, event.logprobs)
                    if choice is not None:
                        yield _sse(self._envelope(chunk, [choice]))
                    continue
                results[index] = event
                if event.finish_reason is FinishReason.ERROR:
                    message = event.error or "the engine failed"
                    yield _sse({"error": {"message": message, "type": "server_error"}})
                    continue
                for choice in self.style.closing(index, event):
                    yield _sse(self._envelope(chunk, [choice]))
            if include_usage:
                body = self._envelope(chunk, [])
                ordered = [results[i] for i in range(len(self.processes))]
                body["usage"] = usage(ordered, self.parents)
                yield _sse(body)
            yield "data: [DONE]\n\n"
        finally:
            kill_quietly(self.kernel, self.processes)  # the client may have gone away mid-stream


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
