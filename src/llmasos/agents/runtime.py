"""The agent runtime: the agent table, a thread per agent, kill and wait, limits on wall time.

An agent's pid comes from the same counter as the kernel's processes, so one pid names one
thing. Killing an agent kills its live model calls at once (their KV pages are freed by the
kernel) and its child agents; the agent itself stops at its next syscall, which raises
AgentKilledError (Python cannot stop a thread that makes none: an agent spinning in its own
code without syscalls runs until it returns). The wall-time limit kills the same way and the
agent ends with AgentLimitError. An agent's children (model calls and agents) end when it does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from llmasos.agents.agent import (
    Agent,
    AgentInfo,
    AgentLimits,
    AgentOutcome,
    AgentResult,
    AgentState,
    TokenAccount,
    budgeted,
)
from llmasos.agents.context import AgentContext
from llmasos.agents.ipc import PostOffice
from llmasos.agents.storage_calls import agent_principal
from llmasos.auth.audit import AuditLog
from llmasos.auth.capabilities import Capabilities
from llmasos.errors import (
    AgentKilledError,
    AgentLimitError,
    CapabilityError,
    InvalidRequestError,
    KernelBusyError,
    NoSuchProcessError,
    ProcessError,
    ProcessTerminatedError,
)
from llmasos.handles import ModelCalls, ProcessHandle
from llmasos.kernel.limits import check_priority
from llmasos.storage.agent_memory import AgentMemory, Embed
from llmasos.storage.fs import FileSystemView
from llmasos.storage.service import Storage
from llmasos.tools.registry import ToolRegistry

logger = logging.getLogger(__name__)

MAX_LIVE_AGENTS = 256
KEEP_FINISHED = 1024  # ended agents kept for wait() and ps --all, oldest dropped first


class AgentRuntime:
    def __init__(
        self,
        backend: ModelCalls,
        tools: ToolRegistry,
        pids: Iterator[int],
        *,
        owner: str = "local",
        max_live: int = MAX_LIVE_AGENTS,
        storage: Storage | None = None,
        embed: Embed | None = None,
    ) -> None:
        self.backend = backend
        self.storage = storage
        self.embed = embed
        self.tools = tools
        self.post = PostOffice()
        self.owner = owner
        self.audit = AuditLog(storage) if storage is not None else None
        self._pids = pids
        self._max_live = max_live
        self._agents: dict[int, Agent] = {}
        self._lock = threading.Lock()

    def start(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        *,
        name: str | None = None,
        priority: int = 0,
        limits: AgentLimits | dict[str, Any] | None = None,
        parent: Agent | None = None,
        owner: str | None = None,
        calls: ModelCalls | None = None,
        capabilities: Capabilities | None = None,
    ) -> Agent:
        """Run `fn(ctx, *args)` as a new agent; returns at once. A child agent inherits its
        parent's owner, model calls and capabilities (narrowed to `capabilities`, never
        widened: CapabilityError); otherwise they default to the runtime's."""
        if not callable(fn):
            raise InvalidRequestError("fn", "must be a function taking the agent's context")
        priority = check_priority(priority)
        if isinstance(limits, dict):
            limits = AgentLimits(**limits)
        name = name or getattr(fn, "__name__", "agent")
        owner = owner or (parent.owner if parent else self.owner)
        caps = self._capabilities_of(owner, name, parent, capabilities)
        limits = budgeted(limits or AgentLimits(), caps)
        with self._lock:
            live = sum(agent.alive for agent in self._agents.values())
            if live >= self._max_live:
                raise KernelBusyError(self._max_live)
            agent = Agent(
                pid=next(self._pids),
                name=name,
                owner=owner,
                priority=priority,
                limits=limits,
                parent=None if parent is None else parent.pid,
                calls=calls or (parent.calls if parent else self.backend),
                capabilities=caps,
                account=self._account_of(parent, caps),
            )
            self._agents[agent.pid] = agent
            self._forget_oldest()
        self.post.open(agent.pid, agent.owner)
        if parent is not None:
            with parent.lock:
                parent.child_agents.append(agent.pid)
        thread = threading.Thread(
            target=self._run, args=(agent, fn, tuple(args)), name=f"llmasos-agent-{agent.pid}"
        )
        thread.daemon = True
        thread.start()
        return agent

    def _capabilities_of(
        self, owner: str, name: str, parent: Agent | None, wanted: Capabilities | None
    ) -> Capabilities:
        """A new agent's capabilities: its parent's narrowed to `wanted` (relative paths as
        the parent means them), or `wanted` itself (relative paths as the agent means them)."""
        if parent is None:
            return (wanted or Capabilities()).resolved(agent_principal(owner, name))
        if wanted is not None:
            wanted = wanted.resolved(agent_principal(parent.owner, parent.name))
        return parent.capabilities.narrowed(wanted)

    @staticmethod
    def _account_of(parent: Agent | None, caps: Capabilities) -> TokenAccount | None:
        """The parent's shared budget (a child never gets a fresh one), else a new one."""
        if parent is not None and parent.account is not None:
            return parent.account
        return TokenAccount(caps.token_budget) if caps.token_budget is not None else None

    def storage_of(self, agent: Agent) -> tuple[FileSystemView, AgentMemory]:
        """The agent's file system view and memory (as principal OWNER:NAME), every path
        checked against its capabilities."""
        if self.storage is None:
            raise InvalidRequestError("storage", "this agent runtime was started without storage")
        principal = agent_principal(agent.owner, agent.name)
        limit = agent.capabilities.check_path
        files = self.storage.files(principal, limit)
        return files, self.storage.memory(principal, self.embed, limit)

    def refused(self, agent: Agent, syscall: str, error: CapabilityError) -> None:
        """Record a capability refusal in the audit log (when the runtime has storage)."""
        if self.audit is not None:
            actor = f"{agent.owner}:{agent.name} (pid {agent.pid})"
            self.audit.append("capability.refused", actor, syscall, "refused", str(error))

    def get(self, pid: int) -> Agent:
        with self._lock:
            agent = self._agents.get(pid)
        if agent is None:
            raise NoSuchProcessError(pid)
        return agent

    def agents(self, *, include_ended: bool = False) -> list[AgentInfo]:
        with self._lock:
            agents = list(self._agents.values())
        return [AgentInfo.of(a) for a in agents if include_ended or a.alive]

    def wait(self, pid: int, timeout: float | None = None) -> AgentResult:
        agent = self.get(pid)
        if not agent.done.wait(timeout):
            raise TimeoutError(f"agent {pid} still running after {timeout} s")
        return AgentResult.of(agent)

    def kill(self, pid: int) -> None:
        agent = self.get(pid)
        if not agent.alive:
            raise ProcessTerminatedError(pid, "kill")
        self._stop(agent, None)

    def remove(self, pid: int, timeout: float = 5.0) -> Agent:
        """Kill the agent if it runs, wait up to `timeout` s for it to end, and forget it (its
        pid is unknown from then on). The agent, as it ended."""
        agent = self.get(pid)
        self._stop(agent, None)
        agent.done.wait(timeout)
        with self._lock:
            self._agents.pop(pid, None)
        return agent

    def kill_process(self, handle: ProcessHandle) -> None:
        with contextlib.suppress(ProcessError):  # it may have ended just now
            handle.kill()

    def close(self, timeout: float = 5.0) -> None:
        """Kill every live agent and wait up to `timeout` s for them to end."""
        with self._lock:
            live = [a for a in self._agents.values() if a.alive]
        for agent in live:
            self._stop(agent, None)
        deadline = time.monotonic() + timeout
        for agent in live:
            agent.done.wait(max(0.0, deadline - time.monotonic()))

    # -- an agent's life --------------------------------------------------------------------

    def _run(self, agent: Agent, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        timer = None
        if agent.limits.wall_time_s is not None:
            timer = threading.Timer(agent.limits.wall_time_s, self._stop, (agent, "wall_time_s"))
            timer.daemon = True
            timer.start()
        try:
            agent.value = fn(AgentContext(self, agent), *args)
            agent.outcome = AgentOutcome.DONE
        except AgentKilledError:
            agent.outcome = AgentOutcome.KILLED
        except AgentLimitError as error:
            agent.outcome, agent.error = AgentOutcome.LIMIT, str(error)
        except Exception as error:  # the agent's own code failed: its result says how
            logger.debug("agent %d failed", agent.pid, exc_info=True)
            agent.outcome, agent.error = AgentOutcome.FAILED, f"{type(error).__name__}: {error}"
        finally:
            if timer is not None:
                timer.cancel()
            self._end(agent)

    def _end(self, agent: Agent) -> None:
        if agent.killed.is_set() and agent.outcome is AgentOutcome.DONE:  # it swallowed the kill
            agent.value = None
            agent.outcome = AgentOutcome.KILLED if agent.limit_hit is None else AgentOutcome.LIMIT
        if agent.outcome is AgentOutcome.LIMIT and agent.error is None:
            agent.error = f"limits.{agent.limit_hit}: the agent ran out of it and was stopped"
        self._stop_children(agent)
        self.post.close(agent.pid)
        agent.finished_at = time.monotonic()
        agent.state = AgentState.TERMINATED
        agent.done.set()

    def _stop(self, agent: Agent, limit: str | None) -> None:
        if not agent.alive or agent.killed.is_set():
            return
        agent.limit_hit = limit
        agent.killed.set()
        self._stop_children(agent)

    def _stop_children(self, agent: Agent) -> None:
        with agent.lock:
            processes = list(agent.processes.values())
            children = list(agent.child_agents)
        for handle in processes:
            self.kill_process(handle)
        for pid in children:
            self._stop(self.get(pid), None)

    def _forget_oldest(self) -> None:
        ended = [pid for pid, a in self._agents.items() if not a.alive]
        for pid in ended[: max(0, len(ended) - KEEP_FINISHED)]:
            del self._agents[pid]
