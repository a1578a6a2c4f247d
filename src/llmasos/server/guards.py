"""What stands between a client and the routes: the body limit and keys (request ids and
access logs: llmasos.server.telemetry).

BodyLimit    counts the bytes actually received (Content-Length or chunked) and answers
             413 past the limit, before a route sees the body
Access       API keys for every route but /health, and the admin key that the
             administrative routes (model import, delete, unload) need; without an admin
             key those routes are off
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from llmasos.auth.capabilities import Capabilities
from llmasos.auth.keys import PREFIX, KeyStore, Role
from llmasos.errors import AuthenticationError, PermissionDeniedError
from llmasos.models.repository import Repository
from llmasos.server.rate_limits import RateLimiter
from llmasos.storage.fs import PathLimit
from llmasos.storage.paths import Principal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 8 * 1024 * 1024
UNLIMITED = Capabilities()


class BodyTooLarge(HTTPException):
    """Raised from receive() once a body passes the limit (FastAPI passes HTTPExceptions on
    from body parsing, so the client gets this 413 rather than a parse error)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over the limit of {limit} bytes")


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes`, counting what arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "message": f"request body over the limit of {self.max_bytes} bytes",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "body_too_large",
                }
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def key_owner(key: str) -> str:
    """The owner name recorded for processes spawned with an API key (never the key itself)."""
    return "key-" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _same(a: str, b: str) -> bool:
    """Constant-time comparison of two keys of any characters."""
    return hmac.compare_digest(a.encode("utf-8", "surrogateescape"), b.encode("utf-8"))


@dataclass(frozen=True)
class Access:
    """Who may use the server. Static keys (--api-key) and the admin key, and the stored keys
    of `keys` (llmasos keys create): each with an owner and a role. With no static key and no
    active stored key, every route is open (but the admin ones)."""

    api_keys: tuple[str, ...] = ()
    admin_key: str | None = None
    keys: KeyStore | None = None

    def authenticate(self, request: Request) -> None:
        """Set request.state.owner (and .admin, .key_id), or raise AuthenticationError when a
        key is required, PermissionDeniedError for a read-only key that asks to change."""
        token = _bearer(request)
        request.state.admin = bool(self.admin_key and token and _same(token, self.admin_key))
        request.state.key_id = None
        request.state.capabilities = UNLIMITED
        request.state.sees_all = request.state.admin
        request.state.role = Role.ADMIN if request.state.admin else Role.USER
        if request.state.admin:
            request.state.owner = key_owner(token or "")
            return
        if token is not None and self.keys is not None and token.startswith(PREFIX):
            info = self.keys.verify(token)
            request.state.owner, request.state.key_id = info.owner, info.id
            request.state.capabilities = info.capabilities
            request.state.admin = request.state.sees_all = info.role is Role.ADMIN
            request.state.role = info.role
            if info.role is Role.READ_ONLY and request.method not in ("GET", "HEAD"):
                raise PermissionDeniedError(f"key {info.id} is read-only: it may only GET")
            return
        if not self.api_keys and not (self.keys is not None and self.keys.required()):
            request.state.owner = "anonymous"
            request.state.sees_all = True  # no keys: one owner, nothing to keep apart
            return
        if token is None or not any(_same(token, key) for key in self.api_keys):
            raise AuthenticationError(
                "missing or invalid API key; send Authorization: Bearer <key>"
            )
        request.state.owner = key_owner(token)

    def require_admin(self, request: Request) -> None:
        """Refuse unless the request carries the admin key or an admin-role key (and refuse
        all when there can be neither)."""
        if getattr(request.state, "admin", False):
            return
        if self.admin_key is None:
            raise PermissionDeniedError(
                "this administrative route needs an admin-role key (llmasos keys create "
                "--role admin): the server was started without --admin-key"
            )
        if _bearer(request) is None:
            raise AuthenticationError(
                "this administrative route needs the admin key; send "
                "Authorization: Bearer <admin key>"
            )
        raise PermissionDeniedError("this administrative route needs the admin key")


def guards(access: Access, limiter: RateLimiter) -> tuple[list[Any], list[Any]]:
    """The dependencies of the protected routes and of the administrative ones: the key
    (failed tries count against the client's address), then the caller's rate."""

    async def authenticate(request: Request) -> None:
        try:
            if request.headers.get("authorization", "").lower().startswith(f"bearer {PREFIX}"):
                await run_in_threadpool(access.authenticate, request)  # a stored key: scrypt
            else:
                access.authenticate(request)
        except AuthenticationError:
            await limiter.admit(f"address {request.client.host if request.client else '?'}")
            raise
        confine_models(request, request.app.state.models.repository)
        await limiter.admit(caller_of(request))

    async def require_admin(request: Request) -> None:
        access.require_admin(request)

    return [Depends(authenticate)], [Depends(authenticate), Depends(require_admin)]


def confine_models(request: Request, repository: Repository | None) -> None:
    """A caller that does not see everything may use, list and see only the shared models of
    `repository` and its own private ones (see llmasos.auth.capabilities)."""
    if request.state.sees_all or repository is None:
        return
    caps = request.state.capabilities
    request.state.capabilities = replace(caps, owner=request.state.owner, private_models=repository)


def path_limit(request: Request, principal: Principal) -> PathLimit | None:
    """The check the caller's key capabilities put on every path `principal` touches."""
    caps = getattr(request.state, "capabilities", UNLIMITED)
    if caps.read is None and caps.write is None:
        return None
    return caps.resolved(Principal(principal.owner)).check_path


def caller_of(request: Request) -> str:
    """Whom rate limits count against: the stored key, else the owner."""
    key_id = getattr(request.state, "key_id", None)
    return f"key {key_id}" if key_id else getattr(request.state, "owner", "anonymous")


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def audit(request: Request, event: str, target: str, outcome: str = "ok", detail: str = "") -> None:
    """Record an event of this request's caller in the server's audit log (blocking)."""
    log = getattr(request.app.state, "audit", None)
    if log is None:
        return
    actor = getattr(request.state, "owner", "anonymous")
    key_id = getattr(request.state, "key_id", None)
    log.append(event, f"{actor} (key {key_id})" if key_id else actor, target, outcome, detail)
