"""OpenAI-style error responses: every failure is JSON with a status that tells the client what
to change, never a stack trace.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens",
               "code": null}}
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmasos.errors import (
    AuthenticationError,
    CapabilityError,
    LLMasOSError,
    NotYoursError,
    PermissionDeniedError,
    RateLimitedError,
)
from llmasos.server.api_docs import allowed_methods
from llmasos.server.guards import audit
from llmasos.wire import error_status

logger = logging.getLogger(__name__)


def error_response(
    status: int, message: str, *, kind: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def error_for(error: LLMasOSError) -> JSONResponse:
    """The HTTP form of a kernel error."""
    status = error_status(error)
    param = status.param or getattr(error, "field", None)
    return error_response(
        status.status, str(error), kind=status.kind, param=param, code=status.code
    )


def _validation_message(error: RequestValidationError) -> tuple[str, str | None]:
    # For a union, pydantic reports each member; the member the input had the type of (its
    # error is not a type mismatch) says what is wrong.
    first = min(error.errors(), key=lambda e: str(e.get("type", "")).endswith("_type"))
    field = _field_path(first)
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    if first.get("type") == "extra_forbidden":
        return f"{field}: unsupported field; see the README for the supported ones", field
    if first.get("type") == "missing":
        return f"{field}: required field is missing", field
    return f"{field}: {_reason(first)}", field


def _field_path(error: dict) -> str | None:
    """messages[0].role from pydantic's ("body", "messages", 0, ...) location."""
    path = ""
    for part in error.get("loc", ()):
        if isinstance(part, int):
            path += f"[{part}]"
        elif _names_a_field(part):
            path += f".{part}" if path else str(part)
    if error.get("type") == "union_tag_invalid":  # a discriminated union: name the tag field
        path += "." + str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
    return path or None


# pydantic's error types -> our wording (the SDK's): what the value must be, and what it was
_BOUNDS = {
    "greater_than_equal": ("ge", "must be >= {}"),
    "greater_than": ("gt", "must be > {}"),
    "less_than_equal": ("le", "must be <= {}"),
    "less_than": ("lt", "must be < {}"),
    "too_short": ("min_length", "must have at least {} items"),
    "too_long": ("max_length", "must have at most {} items"),
    "string_too_short": ("min_length", "must be at least {} characters long"),
    "string_too_long": ("max_length", "must be at most {} characters long"),
}
_TYPES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
}


def _reason(error: dict) -> str:
    kind, context, given = error.get("type", ""), error.get("ctx") or {}, error.get("input")
    if kind in _BOUNDS:
        key, template = _BOUNDS[kind]
        shown = len(given) if kind.endswith(("too_short", "too_long")) else given
        return f"{template.format(context.get(key))}, got {shown!r}"
    if kind in _TYPES:
        return f"must be {_TYPES[kind]}, got {type(given).__name__}"
    if kind == "literal_error":
        return f"must be one of {context.get('expected')}, got {given!r}"
    if kind == "union_tag_invalid":
        return f"must be one of {context.get('expected_tags')}, got {context.get('tag')!r}"
    return str(error.get("msg", "invalid value"))


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "literal"}


def _names_a_field(part: object) -> bool:
    """Parts of a validation error's location that name a field or an index: not the body
    itself, nor the union member pydantic tried (`str`, `list[str]`, a model's name)."""
    if isinstance(part, int):
        return True
    text = str(part)
    if text == "body" or text.lower() in _TYPE_TAGS or {"[", "-"} & set(text):
        return False
    return not text[:1].isupper()  # a union member's model name (ForkCount), not a field


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LLMasOSError)
    async def _kernel_error(request: Request, error: LLMasOSError) -> JSONResponse:
        if isinstance(error, AuthenticationError | PermissionDeniedError | NotYoursError):
            event = (
                "auth.refused"
                if isinstance(error, AuthenticationError)
                else "capability.refused"
                if isinstance(error, CapabilityError)
                else "access.refused"
            )
            target = f"{request.method} {request.url.path}"
            await run_in_threadpool(audit, request, event, target, "refused", str(error))
        response = error_for(error)
        if isinstance(error, RateLimitedError):
            response.headers["Retry-After"] = str(error.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_: Request, error: RequestValidationError) -> JSONResponse:
        message, field = _validation_message(error)
        return error_response(400, message, kind="invalid_request_error", param=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = "body_too_large" if error.status_code == 413 else None
        response = error_response(
            error.status_code, str(error.detail), kind="invalid_request_error", code=code
        )
        response.headers.update(error.headers or {})
        if error.status_code == 405:  # every method of the path, whichever router serves it
            methods = allowed_methods(request.app.router.routes, request.url.path)
            response.headers["Allow"] = ", ".join(methods)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # Starlette answers this outside the middleware that adds the id: add it here
        request_id = getattr(request.state, "request_id", "unknown")
        logger.error(
            "request %s failed", request_id, exc_info=error, extra={"request_id": request_id}
        )
        response = error_response(
            500,
            f"internal error (request {request_id}); the server log has the details",
            kind="server_error",
        )
        response.headers["X-Request-ID"] = request_id
        return response
