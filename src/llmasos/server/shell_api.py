"""GET /v1/shell/translate: a sentence in, one command of the CLI out (nlshell/commands.py),
for `llmasos shell` and the dashboard's command bar. The server's model writes it under the
grammar of the commands that can run now over the objects the caller may see, as a process of
the caller's (counted against its token rate); nothing is run here. The answer says what the
command needs of the caller's role and whether this key has it. A GET: a read-only key may
translate too (what it may then run is only what shows)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from llmasos.auth.keys import Role
from llmasos.errors import InvalidRequestError, PermissionDeniedError, UnprocessableError
from llmasos.jobs.tasks import TaskStatus
from llmasos.nlshell.commands import (
    EXAMPLES,
    MAX_COMMAND_CHARS,
    Thing,
    World,
    grammar,
    may_run,
    parse,
    prompt,
)
from llmasos.runtime.model_calls import ManagerModelCalls
from llmasos.server.guards import caller_of
from llmasos.server.ownership import owner_filter, visible
from llmasos.server.schemas import MODEL_NAME_PATTERN

router = APIRouter()
MAX_SENTENCE_CHARS = 500
MAX_COMMAND_TOKENS = MAX_COMMAND_CHARS  # a token is a character at least: room for any command
MAX_THINGS = 12  # of each kind the prompt lists (the newest): it must fit the context


@router.get("/v1/shell/translate")
async def translate(
    request: Request,
    sentence: Annotated[str, Query(min_length=1, max_length=MAX_SENTENCE_CHARS)],
    model: Annotated[str | None, Query(max_length=129, pattern=MODEL_NAME_PATTERN)] = None,
) -> dict[str, Any]:
    model = request.state.capabilities.model_for(model)  # the key's models only
    if request.state.role is Role.READ_ONLY and request.app.state.models.peek(model) is None:
        raise PermissionDeniedError("a read-only key translates only with a model loaded now")
    world = await run_in_threadpool(world_of, request)
    text = await run_in_threadpool(_translated, request, sentence, world, model)
    try:
        command = parse(text, world)
    except InvalidRequestError:  # the grammar held, so the model stopped before its end
        raise UnprocessableError(
            "sentence", f"the model gave no whole command within {MAX_COMMAND_TOKENS} tokens"
        ) from None
    role = request.state.role.value
    return {
        "sentence": sentence,
        "command": str(command),
        "argv": command.argv,
        "access": command.verb.access.value,
        "role": role,
        "allowed": may_run(command, role),
    }


def world_of(request: Request) -> World:
    """The objects the caller may see now (blocking)."""
    models = request.app.state.models
    live = [p for p in models.processes() if p.alive and visible(request, p.owner)]
    agents = [a for a in request.app.state.agents.agents() if visible(request, a.owner)]
    jobs = request.app.state.jobs
    statuses = jobs.list(owner_filter(request)) if jobs else []
    repository = models.repository
    caps = request.state.capabilities
    names = [n for n in repository.names() if caps.sees_model(n)] if repository is not None else []
    keys = request.app.state.access.keys
    stored = (
        [k for k in keys.list() if k.active] if keys is not None and request.state.admin else []
    )
    now = time.time()
    return World(
        processes=[Thing(str(p.pid), f"{p.state.value}, priority {p.priority}, owner {p.owner}")
                   for p in live[-MAX_THINGS:]],
        agents=[Thing(str(a.pid), a.name) for a in agents[-MAX_THINGS:]],
        jobs=[Thing(s.id, _job_about(s, now)) for s in statuses[-MAX_THINGS:]],
        models=[Thing(name) for name in names[:MAX_THINGS]],
        keys=[Thing(k.id, k.owner) for k in stored[-MAX_THINGS:]],
    )  # fmt: skip


def _job_about(status: TaskStatus, now: float) -> str:
    running = f", running {now - status.started_at:.0f} s" if status.started_at else ""
    return status.state.value + running


def _translated(request: Request, sentence: str, world: World, model: str | None) -> str:
    """The model's command for `sentence`, with as many examples as the context has room for
    (the least alike go first)."""
    with request.app.state.models.lease(model) as loaded:
        kernel = loaded.kernel
        room = kernel.engine.info.context_length - MAX_COMMAND_TOKENS
        for examples in range(len(EXAMPLES), -1, -2):
            text = prompt(sentence, world, examples)
            if len(kernel.tokenize(text)) <= room:
                break
        else:
            raise UnprocessableError(
                "sentence", f"with the server's objects, it does not fit {loaded.name}'s context"
            )
    limiter, caller = request.app.state.rate_limiter, caller_of(request)
    calls = ManagerModelCalls(
        request.app.state.models, request.state.owner, lambda n: limiter.take_tokens(caller, n)
    )
    sampling = {"max_tokens": MAX_COMMAND_TOKENS, "temperature": 0.0, "grammar": grammar(world)}
    return calls.spawn(text, sampling, priority=0, model=model).wait().text
