"""What the OpenAPI document says beyond the request schemas: each route's error responses (the
error body's shape and when each status comes), streamed content types, path parameters, links
from a response to the routes its ids lead to, and the methods a path allows (for a 405's
Allow header)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel
from starlette.routing import BaseRoute

from llmasos.server.schemas import NAME_PATTERN

WHEN = {
    400: "A field is missing, of the wrong type or outside its bounds; the message names it.",
    401: "No valid API key: send Authorization: Bearer <key>.",
    403: "The key may not use this route (administrative routes need the admin key; read-only "
    "keys may only GET), has no grant on that path, or asks for something outside its "
    "capabilities (code capability_denied).",
    404: "No such model, process, agent or file.",
    409: "The process or agent already ended, the name is taken, the model is busy or pinned (or "
    "LoRA adapters run over it), or a write's expected_version is no longer the latest.",
    413: "The body is over 8 MiB, the prompt plus max_tokens exceed the model's context, or a "
    "write would pass the owner's storage quota.",
    422: "Well formed, but beyond what this model can take: top_k over its vocabulary, a "
    "constraint it cannot compile, an input longer than it reads, a generation model asked to "
    "embed or an embedding model asked to generate, a model source that cannot be imported, "
    "a tool this server does not have.",
    429: "A page quota, the limit of live processes, or the key's request or token rate (code "
    "rate_limited, with Retry-After); retry later.",
    500: "An internal error (the message names the request id to look up in the server log), "
    "or a stored record that failed its integrity check (code integrity_error).",
    503: "The kernel is closed, the engine failed, or there is no room in the memory budget.",
}
PROCESS_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)
OPENAI_ERRORS = (400, 401, 403, 404, 413, 422, 429, 500, 503)
ADMIN_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)
STORAGE_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 500, 503)

ModelNameParameter = Annotated[str, Path(pattern=NAME_PATTERN)]
Pid = Annotated[int, Path(ge=1, le=2**63 - 1)]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """Every error, as OpenAI sends them."""

    error: ErrorDetail


def errors(codes: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody, "description": WHEN[code]} for code in codes}


def streamed(description: str, *, json_too: bool) -> dict[int | str, dict[str, Any]]:
    """A 200 that is server-sent events (and, when `json_too`, JSON unless stream is set)."""
    content: dict[str, Any] = {"text/event-stream": {"schema": {}}}  # each event: data JSON
    if json_too:
        content["application/json"] = {"schema": {"type": "object"}}
    return {200: {"description": description, "content": content}}


def _path_ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def links(
    pointer: str, parameter: str, targets: Iterable[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """OpenAPI links from a response field (a JSON pointer into the body) to the operations
    (path, method) that take it as their path `parameter`: a client, or a stateful tester,
    learns where a pid or a model name leads."""
    return {
        f"{method}{path}": {
            "operationRef": _path_ref(path, method),
            "parameters": {parameter: f"$response.body#{pointer}"},
        }
        for path, method in targets
    }


PROCESS_ROUTES = (
    ("/v1/processes/{pid}", "get"),
    ("/v1/processes/{pid}/signal", "post"),
    ("/v1/processes/{pid}/fork", "post"),
    ("/v1/processes/{pid}/events", "get"),
)
MODEL_ROUTES = (("/v1/models/{name}", "get"), ("/v1/models/{name}/load", "post"))
AGENT_ROUTES = (
    ("/v1/agents/{pid}", "get"),
    ("/v1/agents/{pid}", "delete"),
    ("/v1/agents/{pid}/trace", "get"),
    ("/v1/agents/{pid}/events", "get"),
)


def allowed_methods(routes: Iterable[BaseRoute], path: str) -> list[str]:
    """Every method some route serves at `path` (HEAD, which is implied by GET, left out)."""
    methods: set[str] = set()
    for route in _flatten(routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods - {"HEAD"})


def _flatten(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        nested = getattr(route, "routes", None) or getattr(
            getattr(route, "router", None), "routes", None
        )
        if nested is not None and getattr(route, "path_regex", None) is None:
            yield from _flatten(nested)
        else:
            yield route
