"""OpenAI-compatible routes: /v1/models, /v1/completions, /v1/chat/completions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmasos.chat import ChatMessage, check_messages, render_chat
from llmasos.engine.base import EngineInfo
from llmasos.errors import EngineError, InvalidRequestError, KernelClosedError, ProcessError
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import FinishReason, Process, Result, Signal, TextPiece
from llmasos.runtime.manager import ModelManager
from llmasos.server.events import merged_events
from llmasos.server.schemas import ChatRequest, CompletionRequest, SamplingFields

router = APIRouter()

DISCONNECT_POLL_S = 0.25

# Choice builders: (index, text, finish_reason) -> one entry of "choices".
ChoiceBuilder = Callable[[int, str, str | None], dict[str, Any]]


def models_of(request: Request) -> ModelManager:
    return request.app.state.models


@router.get("/v1/models")
def list_models(request: Request) -> dict[str, Any]:
    """The repository's models, and any loaded model it does not hold (a GGUF path)."""
    models = models_of(request)
    loaded = {info.name for info in models.loaded()}
    names = models.repository.names() if models.repository else []
    created = request.app.state.started_at
    data = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "llmasos",
            "loaded": name in loaded,
        }
        for name in sorted({*names, *loaded})
    ]
    return {"object": "list", "data": data}


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request) -> Any:
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts:
        raise InvalidRequestError("prompt", "must be a string or a non-empty list of strings")
    body.sampling_params()  # a bad field is refused before any model is loaded
    kernel, processes = await run_in_threadpool(spawn_all, request, body, plain_prompts(prompts))
    reply = _Reply(request, kernel, processes, "cmpl", "text_completion", _completion_choice)
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return reply.stream(_completion_choice, include_usage=usage)
    return await reply.whole()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    prompts = chat_prompts(check_messages(body.messages))
    body.sampling_params()
    kernel, processes = await run_in_threadpool(spawn_all, request, body, prompts)
    reply = _Reply(request, kernel, processes, "chatcmpl", "chat.completion", _chat_choice)
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return reply.stream(_chat_delta, include_usage=usage, first=_chat_role_delta)
    return await reply.whole()


# The prompts of a request and the stop strings their format needs, for a model's engine.
PromptsFor = Callable[[EngineInfo], tuple[list[str], tuple[str, ...]]]


def plain_prompts(prompts: Sequence[str]) -> PromptsFor:
    return lambda _info: (list(prompts), ())


def chat_prompts(messages: list[ChatMessage]) -> PromptsFor:
    """The messages rendered with the model's chat template (known once it is loaded)."""

    def render(info: EngineInfo) -> tuple[list[str], tuple[str, ...]]:
        prompt = render_chat(messages, info)
        return [prompt.text], prompt.stop

    return render


def spawn_all(
    request: Request, body: SamplingFields, prompts_for: PromptsFor
) -> tuple[Kernel, list[Process]]:
    """Spawn one process per prompt on the requested model (loading it if needed; blocking:
    call it in a worker thread). If any spawn fails, kill the ones already started."""
    with models_of(request).lease(body.model) as loaded:
        kernel = loaded.kernel
        prompts, extra_stop = prompts_for(kernel.engine.info)
        params = body.sampling_params(extra_stop)
        processes: list[Process] = []
        try:
            for prompt in prompts:
                processes.append(
                    kernel.spawn(prompt, params, priority=body.priority, owner=request.state.owner)
                )
        except Exception:
            kill_quietly(kernel, processes)
            raise
    return kernel, processes


def kill_quietly(kernel: Kernel, processes: Sequence[Process]) -> None:
    """Kill whatever is still alive without waiting (for clients that went away)."""
    for process in processes:
        if process.alive:
            with contextlib.suppress(ProcessError, KernelClosedError):  # it ended meanwhile
                kernel.signal(process.pid, Signal.KILL, wait=False)


def _finish_reason(result: Result) -> str:
    return result.finish_reason.value


def _completion_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}


def _chat_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def _chat_delta(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    delta = {"content": text} if text else {}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def _chat_role_delta(index: int, _text: str, _reason: str | None) -> dict[str, Any]:
    delta = {"role": "assistant", "content": ""}
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}


def _usage(results: Sequence[Result]) -> dict[str, Any]:
    prompt = sum(r.usage.prompt_tokens for r in results)
    completion = sum(r.usage.completion_tokens for r in results)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sum(r.usage.cached_tokens for r in results)},
    }


class _Reply:
    """Builds a completion-style answer, whole or streamed, from the processes serving it."""

    def __init__(
        self,
        request: Request,
        kernel: Kernel,
        processes: list[Process],
        id_prefix: str,
        object_name: str,
        choice: ChoiceBuilder,
    ) -> None:
        self.request = request
        self.kernel = kernel
        self.processes = processes
        self.id = f"{id_prefix}-{processes[0].pid}"
        self.object_name = object_name
        self.choice = choice
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
        body = self._envelope(
            self.object_name,
            [self.choice(i, r.text, _finish_reason(r)) for i, r in enumerate(results)],
        )
        body["usage"] = _usage(results)
        return body

    async def _results(self) -> list[Result]:
        results: dict[int, Result] = {}
        async for index, event in merged_events(self.processes):
            if isinstance(event, Result):
                results[index] = event
        return [results[i] for i in range(len(self.processes))]

    def stream(
        self,
        piece: ChoiceBuilder,
        *,
        include_usage: bool,
        first: ChoiceBuilder | None = None,
    ) -> StreamingResponse:
        return StreamingResponse(
            self._sse(piece, include_usage, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _sse(
        self, piece: ChoiceBuilder, include_usage: bool, first: ChoiceBuilder | None
    ) -> AsyncIterator[str]:
        chunk_object = f"{self.object_name}.chunk"
        results: list[Result] = []
        try:
            if first is not None:
                choices = [first(i, "", None) for i in range(len(self.processes))]
                yield _sse(self._envelope(chunk_object, choices))
            async for index, event in merged_events(self.processes):
                if isinstance(event, TextPiece):
                    if event.text:
                        yield _sse(self._envelope(chunk_object, [piece(index, event.text, None)]))
                    continue
                results.append(event)
                if event.finish_reason is FinishReason.ERROR:
                    message = event.error or "the engine failed"
                    yield _sse({"error": {"message": message, "type": "server_error"}})
                    continue
                yield _sse(self._envelope(chunk_object, [piece(index, "", _finish_reason(event))]))
            if include_usage:
                body = self._envelope(chunk_object, [])
                body["usage"] = _usage(results)
                yield _sse(body)
            yield "data: [DONE]\n\n"
        finally:
            kill_quietly(self.kernel, self.processes)  # the client may have gone away mid-stream


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
