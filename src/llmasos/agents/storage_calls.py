"""ctx.fs and ctx.memory: the file system and agent memory as syscalls. Each method call is
recorded in the agent's trace (contents shown by size, not copied) and first checks that the
agent was not killed. An agent acts as principal OWNER:NAME: its own namespace and memory, and
what others granted it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmasos.agents.agent import AgentState
from llmasos.storage.paths import Principal

if TYPE_CHECKING:
    from llmasos.agents.context import AgentContext

FS_CALLS = frozenset(
    {"write", "read", "stat", "list", "history", "diff", "delete", "move", "rollback", "grant",
     "revoke", "grants", "usage"}
)  # fmt: skip
MEMORY_CALLS = frozenset({"core", "store", "search", "log", "recall", "count", "index", "forget"})
_INVALID = re.compile(r"[^A-Za-z0-9_.@-]")


def agent_principal(owner: str, name: str) -> Principal:
    """The principal an agent acts as: OWNER:NAME. A name that is not a valid namespace name
    is made one, with a digest of the original so that two names never share a namespace
    (report/v1 and report-v1 differ)."""
    cleaned = _INVALID.sub("-", name).strip("-.")[:100]
    if cleaned == name and cleaned[:1].isalnum():
        return Principal(owner, name)
    digest = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return Principal(owner, f"{cleaned}-{digest}" if cleaned[:1].isalnum() else f"agent-{digest}")


def shown(value: Any) -> Any:
    """A trace-sized picture of an argument or result."""
    if isinstance(value, bytes | bytearray):
        return {"bytes": len(value)}
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + f"... ({len(value)} characters)"
    if isinstance(value, list):
        return [shown(item) for item in value[:20]]
    if hasattr(value, "to_json"):
        return shown(value.to_json())
    if isinstance(value, dict):
        return {key: shown(item) for key, item in value.items()}
    return value


class StorageSyscalls:
    """A traced view on a FileSystemView (kind "fs") or an AgentMemory (kind "memory")."""

    def __init__(
        self,
        ctx: AgentContext,
        kind: str,
        target: Any,
        calls: frozenset[str],
        guard: Callable[[str, int], None] | None = None,
    ) -> None:
        """`guard(method, number of arguments)` runs first in each call (a capability
        check)."""
        self._ctx = ctx
        self._kind = kind
        self._target = target
        self._calls = calls
        self._guard = guard

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._calls:
            raise AttributeError(f"ctx.{self._kind} has no {name!r}; it has {sorted(self._calls)}")
        method = getattr(self._target, name)

        def syscall(*args: Any, **kwargs: Any) -> Any:
            inputs = {"args": shown(list(args)), **shown(kwargs)}
            with self._ctx._syscall(f"{self._kind}.{name}", inputs, AgentState.BLOCKED) as entry:
                if self._guard is not None:
                    self._guard(name, len(args) + len(kwargs))
                result = method(*args, **kwargs)
                entry.output = shown(result)
                return result

        syscall.__doc__ = method.__doc__
        return syscall

    def __dir__(self) -> list[str]:
        return sorted(self._calls)
