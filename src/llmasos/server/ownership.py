"""Who sees what: an owner sees, streams, signals and reads only its own processes and agents;
admins (and every caller of a server without keys, where there is only one owner) see all.
Another owner's object answers as if it did not exist (404), and the attempt is audited."""

from __future__ import annotations

from fastapi import Request

from llmasos.agents.agent import Agent
from llmasos.errors import NotYoursError
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import Process


def sees_all(request: Request) -> bool:
    """Whether the caller may see every owner's objects."""
    return bool(getattr(request.state, "sees_all", False))


def visible(request: Request, owner: str) -> bool:
    return sees_all(request) or owner == getattr(request.state, "owner", None)


def owner_filter(request: Request) -> str | None:
    """The owner whose objects the caller sees: its own, or None (every one) for an admin."""
    return None if sees_all(request) else request.state.owner


def owned_process(request: Request, pid: int) -> tuple[Kernel, Process]:
    """The kernel and process `pid`, if the caller may see it (NoSuchProcessError otherwise)."""
    kernel = request.app.state.models.kernel_of(pid)
    process = kernel.get(pid)
    if not visible(request, process.owner):
        raise NotYoursError(pid)
    return kernel, process


def owned_agent(request: Request, pid: int) -> Agent:
    """Agent `pid`, if the caller may see it (NoSuchProcessError otherwise)."""
    agent = request.app.state.agents.get(pid)
    if not visible(request, agent.owner):
        raise NotYoursError(pid)
    return agent
