"""OpenAI-compatible routes: /v1/models, /v1/completions, /v1/chat/completions.

Every prompt is one process; `n` choices are that process and n - 1 forks of it, so the prompt
is computed once however large n is. A seed makes every choice reproducible: choice i of a
seeded request draws with seed + i. `response_format` and `tools` become the process's output
constraint (see toolcalls.py for the tool-call format).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from llmasos.chat import ChatMessage, check_messages, render_chat
from llmasos.engine.base import EngineInfo
from llmasos.errors import InvalidRequestError
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.limits import SEED_MAX
from llmasos.kernel.process import Process
from llmasos.runtime.manager import ModelManager
from llmasos.server.api_docs import MODEL_ROUTES, links, streamed
from llmasos.server.guards import caller_of
from llmasos.server.openai_format import ChatStyle, CompletionStyle
from llmasos.server.openai_reply import Reply, kill_quietly
from llmasos.server.schemas import (
    ChatRequest,
    CompletionRequest,
    SamplingFields,
    messages_as_dicts,
)
from llmasos.toolcalls import FunctionTool, ToolMode, check_tool_choice, check_tools, tool_grammar

router = APIRouter()


@dataclass(frozen=True)
class Prompts:
    """What a request asks the model: its prompts, the stop strings their format needs, and
    the grammar tool calls must follow (None: no tool constraint)."""

    texts: list[str]
    stop: tuple[str, ...] = ()
    grammar: str | None = None


PromptsFor = Callable[[EngineInfo], Prompts]  # the model's chat template is known once loaded


def models_of(request: Request) -> ModelManager:
    return request.app.state.models


@router.get(
    "/v1/models",
    responses={
        200: {"description": "The models", "links": links("/data/0/id", "name", MODEL_ROUTES)}
    },
)
def list_models(request: Request) -> dict[str, Any]:
    """The repository's models, and any loaded model it does not hold (a GGUF path); for a
    caller that does not see everything, the shared ones and its own private ones."""
    models = models_of(request)
    loaded = {info.name for info in models.loaded()}
    names = models.repository.names() if models.repository else []
    sees = request.state.capabilities.sees_model
    names, loaded = [n for n in names if sees(n)], {n for n in loaded if sees(n)}
    created = request.app.state.started_at
    data = [
        {
            "id": n,
            "object": "model",
            "created": created,
            "owned_by": "llmasos",
            "loaded": n in loaded,
        }
        for n in sorted({*names, *loaded})
    ]
    return {"object": "list", "data": data}


@router.post(
    "/v1/completions",
    response_model=None,
    responses=streamed("The completion; server-sent events when stream is set.", json_too=True),
)
async def completions(body: CompletionRequest, request: Request) -> Any:
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    body.sampling_params()  # a bad field is refused before any model is loaded
    spawned = await run_in_threadpool(spawn_all, request, body, plain_prompts(prompts))
    return await answer(request, body, spawned, CompletionStyle(body.logprobs))


@router.post(
    "/v1/chat/completions",
    response_model=None,
    responses=streamed(
        "The chat completion; server-sent events when stream is set.", json_too=True
    ),
)
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    messages = check_messages(messages_as_dicts(body.messages))
    tools = check_tools([t.model_dump(exclude_none=True) for t in body.tools or []] or None)
    named = body.tool_choice
    choice = check_tool_choice(named.model_dump() if isinstance(named, BaseModel) else named, tools)
    for name in ("tool_choice", "parallel_tool_calls"):
        if not tools and getattr(body, name) is not None:
            raise InvalidRequestError(name, "needs tools")
    text_schema = body.constraint().get("json_schema")
    grammar = (
        tool_grammar(
            tools, choice, parallel=body.parallel_tool_calls is not False, text_schema=text_schema
        )
        if tools
        else None
    )
    body.sampling_params()
    prompts = chat_prompts(messages, tools, grammar)
    spawned = await run_in_threadpool(spawn_all, request, body, prompts)
    calls = bool(tools) and choice.mode is not ToolMode.NONE
    top = body.logprob_count()
    return await answer(request, body, spawned, ChatStyle(top, calls, f"call-{spawned[1][0].pid}"))


async def answer(
    request: Request,
    body: CompletionRequest | ChatRequest,
    spawned: tuple[Kernel, list[Process], list[bool]],
    style: CompletionStyle | ChatStyle,
) -> Any:
    kernel, processes, parents = spawned
    reply = Reply(request, kernel, processes, parents, style)
    if body.stream:
        usage = body.stream_options is not None and body.stream_options.include_usage
        return reply.stream(include_usage=usage)
    return await reply.whole()


def plain_prompts(prompts: Sequence[str]) -> PromptsFor:
    return lambda _info: Prompts(list(prompts))


def chat_prompts(
    messages: list[ChatMessage], tools: Sequence[FunctionTool] = (), grammar: str | None = None
) -> PromptsFor:
    """The messages rendered with the model's chat template (known once it is loaded)."""

    def render(info: EngineInfo) -> Prompts:
        prompt = render_chat(messages, info, tools)
        return Prompts([prompt.text], prompt.stop, grammar)

    return render


def spawn_all(
    request: Request, body: SamplingFields, prompts_for: PromptsFor
) -> tuple[Kernel, list[Process], list[bool]]:
    """Spawn each prompt's process and n - 1 forks of it on the requested model (loading it
    if needed; blocking: call it in a worker thread): (kernel, processes in choice order,
    which of them are a prompt's own). If anything fails, the ones started are killed."""
    n = getattr(body, "n", None) or 1
    caps = request.state.capabilities
    with models_of(request).lease(caps.model_for(body.model)) as loaded:
        kernel = loaded.kernel
        prompts = prompts_for(kernel.engine.info)
        params = body.sampling_params(prompts.stop, grammar=prompts.grammar)
        tokens = len(prompts.texts) * n * params.max_tokens
        request.app.state.rate_limiter.take_tokens(caller_of(request), tokens)
        seeds = (
            None
            if params.seed is None
            else [(params.seed + i) % (SEED_MAX + 1) for i in range(1, n)]
        )
        processes: list[Process] = []
        parents: list[bool] = []
        try:
            with kernel.paused():  # one scheduling decision sees them all
                for text in prompts.texts:
                    parent = kernel.spawn(
                        text,
                        params,
                        priority=body.priority,
                        owner=request.state.owner,
                        max_pages=caps.max_pages,
                    )
                    processes.append(parent)
                    parents.append(True)
                    if n > 1:
                        forks = kernel.fork(parent.pid, n - 1, seeds=seeds)
                        processes += forks
                        parents += [False] * len(forks)
        except Exception:
            kill_quietly(kernel, processes)
            raise
    request.state.pids = [p.pid for p in processes]  # the access log names them
    return kernel, processes, parents
