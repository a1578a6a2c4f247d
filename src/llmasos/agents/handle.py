"""A handle on an agent, as Client.run_agent returns it."""

from __future__ import annotations

from typing import Any

from llmasos.agents.agent import AgentInfo, AgentResult, AgentState
from llmasos.agents.runtime import AgentRuntime

CLIENT_PID = 0  # the sender of messages a client sends to an agent


class AgentHandle:
    def __init__(self, runtime: AgentRuntime, pid: int) -> None:
        self._runtime = runtime
        self.pid = pid

    @property
    def state(self) -> AgentState:
        return self._runtime.get(self.pid).state

    def info(self) -> AgentInfo:
        return AgentInfo.of(self._runtime.get(self.pid))

    def wait(self, timeout: float | None = None) -> AgentResult:
        """The agent's result once it ended: `.value` (its function's return value), `.error`,
        `.outcome`, `.usage`, `.trace`. TimeoutError if it is still running after `timeout`."""
        return self._runtime.wait(self.pid, timeout)

    def kill(self) -> None:
        """Kill the agent, its model calls and its child agents."""
        self._runtime.kill(self.pid)

    def send(self, body: Any) -> None:
        """Put a message in the agent's mailbox (its sender is pid 0, the client)."""
        self._runtime.post.send(CLIENT_PID, self.pid, body)

    def __repr__(self) -> str:
        return f"<AgentHandle pid={self.pid} state={self.state.value}>"
