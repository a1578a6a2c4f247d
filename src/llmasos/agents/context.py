"""The syscalls of an agent: what its function, given this context as its first argument, may
ask of the OS. Each one is recorded in the agent's trace, checks that the agent was not killed,
and the model and tool calls count against its limits.

    ctx.pid                          the agent's pid
    ctx.llm(prompt_or_messages, **sampling)
                                     a model call, run as a child process with the agent's
                                     priority: the text, or the parsed object with json_schema=
    ctx.tool(name, **arguments)      a ToolResult (an error result when the arguments do not
                                     validate, or the tool fails or hits a limit)
    ctx.send(to, body)               to a pid's mailbox or a channel name
    ctx.broadcast(body)              to every other live agent of its owner; how many got it
    ctx.recv(timeout=None, channel=None)
                                     a Message (.sender, .body), from the mailbox or a channel
    ctx.spawn(fn, *args, name=None, priority=None, limits=None, capabilities=None)
                                     a child agent's pid (it ends when this agent ends), with
                                     this agent's capabilities, narrowed, never widened
    ctx.wait(pid, timeout=None)      that agent's return value (AgentError if it failed)
    ctx.sleep(seconds)
    ctx.fs.write/read/stat/list/history/diff/delete/move/rollback/grant/revoke/grants/usage
                                     the file system as principal OWNER:AGENT-NAME (see
                                     llmasos.storage.fs): its own namespace, and grants
    ctx.memory.core/store/search/log/recall/count
                                     the agent's memory: core blocks, archival entries, the
                                     recall log, search by meaning (llmasos.storage.agent_memory)
Every syscall first checks the agent's capabilities (llmasos.auth.capabilities): the model,
the tools, each path and its memory, the channel; a refusal is a CapabilityError and an
audit-log entry.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from llmasos.agents.agent import Agent, AgentLimits, AgentOutcome, AgentState, TraceEntry
from llmasos.agents.ipc import POLL_S, Message
from llmasos.agents.storage_calls import FS_CALLS, MEMORY_CALLS, StorageSyscalls
from llmasos.auth.capabilities import Capabilities
from llmasos.errors import (
    AgentError,
    AgentKilledError,
    AgentLimitError,
    CapabilityError,
    EngineError,
    IncompleteOutputError,
    InvalidRequestError,
    NoSuchProcessError,
    ReceiveTimeoutError,
)
from llmasos.handles import ProcessHandle
from llmasos.kernel.process import FinishReason, Result
from llmasos.toolcalls import (
    FunctionTool,
    check_tool_choice,
    parse_calls,
    tool_grammar,
    tools_prompt,
)
from llmasos.tools.registry import ToolResult

if TYPE_CHECKING:
    from llmasos.agents.runtime import AgentRuntime


class AgentContext:
    """The syscall surface handed to an agent's function (one per agent, its thread only)."""

    def __init__(self, runtime: AgentRuntime, agent: Agent) -> None:
        self._runtime = runtime
        self._agent = agent

    @property
    def pid(self) -> int:
        return self._agent.pid

    @property
    def fs(self) -> StorageSyscalls:
        """The file system, as this agent (OWNER:NAME); each call a syscall."""
        files, _ = self._runtime.storage_of(self._agent)
        return StorageSyscalls(self, "fs", files, FS_CALLS)

    @property
    def memory(self) -> StorageSyscalls:
        """This agent's memory (core, recall, archival); each call a syscall."""
        _, memory = self._runtime.storage_of(self._agent)
        caps, principal = self._agent.capabilities, memory.principal
        return StorageSyscalls(
            self, "memory", memory, MEMORY_CALLS, lambda m, n: caps.check_memory(principal, m, n)
        )

    @property
    def trace(self) -> list[TraceEntry]:
        """This agent's syscalls so far (the last one: the call that just returned)."""
        return list(self._agent.trace)

    # -- model and tools --------------------------------------------------------------------

    def llm(
        self,
        prompt: str | list[dict[str, Any]],
        *,
        model: str | None = None,
        tools: list[str] | None = None,
        tool_choice: str = "auto",
        **sampling: Any,
    ) -> Any:
        """Generate from `prompt` (a string, or chat messages rendered with the model's chat
        template). Takes Client.spawn's sampling keywords. With `tools` (registered tool
        names; a string prompt), the prompt describes them in the tool-call format and the
        output is constrained to it: "auto" lets the model call tools or write text,
        "required" makes it call one, a tool's name makes it call that one. The calls come
        back as a list of ToolCall (.name, .arguments as JSON text), or the text if none."""
        inputs = {"prompt": prompt, **sampling}
        if tools is not None:
            inputs |= {"tools": tools, "tool_choice": tool_choice}
        with self._syscall("llm", inputs, AgentState.BLOCKED) as entry:
            model = self._agent.capabilities.model_for(model)
            for name in tools or ():
                self._agent.capabilities.check_tool(name)
            if tools is not None:
                prompt, sampling = self._with_tools(prompt, sampling, tools, tool_choice)
            self._take_step("model_calls")
            handle = self._start_model_call(prompt, sampling, model)
            entry.pid = handle.pid
            result = self._finish_model_call(handle)
            self._record_model_call(entry, result)
            if result.finish_reason is FinishReason.KILLED:
                self._check_alive()
                raise AgentError(f"llm: the model call (pid {handle.pid}) was killed")
            if result.finish_reason is FinishReason.ERROR:
                raise EngineError(result.error or f"llm: the model call (pid {handle.pid}) failed")
            if tools is not None:
                return parse_calls(result.text, f"call-{handle.pid}") or result.text
            if sampling.get("json_schema") is None:
                return result.text
            if result.finish_reason is not FinishReason.STOP:
                raise IncompleteOutputError(
                    f"max_tokens: the JSON value was not complete after "
                    f"{len(result.token_ids)} tokens; raise max_tokens"
                )
            return json.loads(result.text)

    def tool(self, name: str, **arguments: Any) -> ToolResult:
        with self._syscall("tool", {"name": name, "arguments": arguments}, AgentState.BLOCKED) as e:
            self._agent.capabilities.check_tool(name)
            self._take_step("tool_calls")
            result = self._runtime.tools.call(name, arguments)
            self._agent.usage.tool_s += result.duration_s
            e.output, e.error = result.value, result.error
            return result

    def check_tool(self, name: str) -> None:
        """Raise CapabilityError (audited) unless this agent may use tool `name`; for tools
        that are not registry tools (the declarative loop's own)."""
        try:
            self._agent.capabilities.check_tool(name)
        except CapabilityError as error:
            self._runtime.refused(self._agent, f"tool {name}", error)
            raise

    def tool_specs(self, names: list[str] | None = None) -> list[FunctionTool]:
        """The registered tools (all, or those named) with their descriptions and schemas."""
        return self._runtime.tools.specs(names)

    def _with_tools(
        self, prompt: object, sampling: dict[str, Any], names: list[str], choice: str
    ) -> tuple[str, dict[str, Any]]:
        if not isinstance(prompt, str):
            raise InvalidRequestError("tools", "take a string prompt (chat messages: not yet)")
        if any(sampling.get(k) is not None for k in ("json_schema", "grammar", "regex")):
            raise InvalidRequestError("tools", "cannot be combined with another constraint")
        specs = self.tool_specs(list(names))
        named = {"type": "function", "function": {"name": choice}}
        mode = check_tool_choice(choice if choice in ("auto", "required") else named, specs)
        grammar = tool_grammar(specs, mode, parallel=True, text_schema=None)
        return f"{tools_prompt(specs)}\n\n{prompt}", {**sampling, "grammar": grammar}

    # -- messages ---------------------------------------------------------------------------

    def send(self, to: int | str, body: Any) -> None:
        with self._syscall("send", {"to": to, "body": body}, AgentState.BLOCKED):
            if isinstance(to, str):
                self._agent.capabilities.check_channel(to)
            self._runtime.post.send(self.pid, to, body)

    def broadcast(self, body: Any) -> int:
        with self._syscall("broadcast", {"body": body}, AgentState.BLOCKED) as entry:
            entry.output = self._runtime.post.broadcast(self.pid, body)
            return entry.output

    def recv(self, timeout: float | None = None, channel: str | None = None) -> Message:
        inputs = {"timeout": timeout, "channel": channel}
        with self._syscall("recv", inputs, AgentState.WAITING) as entry:
            if channel is not None:
                self._agent.capabilities.check_channel(channel)
            message = self._runtime.post.receive(
                self.pid, channel=channel, timeout=timeout, interrupt=self._check_alive
            )
            entry.output = {"sender": message.sender, "body": message.body}
            return message

    # -- other agents -----------------------------------------------------------------------

    def spawn(
        self,
        fn: Callable[..., Any],
        *args: Any,
        name: str | None = None,
        priority: int | None = None,
        limits: AgentLimits | None = None,
        capabilities: Capabilities | None = None,
    ) -> int:
        """A child agent; its capabilities are this agent's, narrowed to `capabilities`."""
        inputs = {"fn": getattr(fn, "__name__", repr(fn)), "args": list(args)}
        if capabilities is not None:
            inputs["capabilities"] = capabilities.to_json()
        with self._syscall("spawn", inputs, AgentState.BLOCKED) as entry:
            child = self._runtime.start(
                fn,
                args,
                name=name,
                priority=self._agent.priority if priority is None else priority,
                limits=limits,
                parent=self._agent,
                capabilities=capabilities,
            )
            entry.pid = entry.output = child.pid
            return child.pid

    def wait(self, pid: int, timeout: float | None = None) -> Any:
        with self._syscall("wait", {"pid": pid, "timeout": timeout}, AgentState.WAITING) as entry:
            other = self._runtime.get(pid)
            if other.owner != self._agent.owner:  # another owner's agents are not there
                raise NoSuchProcessError(pid)
            deadline = None if timeout is None else time.monotonic() + timeout
            while not other.done.wait(POLL_S):
                self._check_alive()
                if deadline is not None and time.monotonic() >= deadline:
                    raise ReceiveTimeoutError(f"timeout: agent {pid} still runs after {timeout} s")
            entry.pid = pid
            if other.outcome is not AgentOutcome.DONE:
                raise AgentError(f"agent {pid} ended {other.outcome.value}: {other.error}")
            entry.output = other.value
            return other.value

    def sleep(self, seconds: float) -> None:
        with self._syscall("sleep", {"seconds": seconds}, AgentState.SLEEPING):
            self._agent.killed.wait(max(0.0, seconds))
            self._check_alive()

    # -- the machinery ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _syscall(
        self, name: str, inputs: dict[str, Any], state: AgentState
    ) -> Iterator[TraceEntry]:
        agent = self._agent
        self._check_alive()
        started = time.monotonic()
        entry = TraceEntry(name, round(started - agent.started_at, 6), inputs)
        agent.usage.syscalls += 1
        agent.state = state
        try:
            yield entry
        except Exception as error:
            entry.error = str(error)
            if isinstance(error, CapabilityError):
                self._runtime.refused(agent, name, error)
            raise
        finally:
            entry.duration_s = round(time.monotonic() - started, 6)
            agent.trace.append(entry)
            agent.state = AgentState.RUNNING

    def _check_alive(self) -> None:
        agent = self._agent
        if agent.killed.is_set():
            if agent.limit_hit is not None:
                raise AgentLimitError(agent.limit_hit, "the agent ran out of it and was stopped")
            raise AgentKilledError(agent.pid)

    def _take_step(self, counter: str) -> None:
        usage, limits = self._agent.usage, self._agent.limits
        if limits.max_steps is not None and usage.steps >= limits.max_steps:
            raise AgentLimitError("max_steps", f"the agent made its {limits.max_steps} steps")
        budget = limits.token_budget
        if counter == "model_calls" and budget is not None and usage.computed_tokens >= budget:
            raise AgentLimitError(
                "token_budget", f"the agent used {usage.computed_tokens} of {budget} tokens"
            )
        account = self._agent.account
        if counter == "model_calls" and account is not None and account.used >= account.limit:
            raise AgentLimitError(
                "token_budget",
                f"the agent and its family used {account.used} of the {account.limit} tokens "
                "its capabilities give",
            )
        setattr(usage, counter, getattr(usage, counter) + 1)

    def _start_model_call(
        self, prompt: str | list[dict[str, Any]], sampling: dict[str, Any], model: str | None
    ) -> ProcessHandle:
        backend, agent = self._agent.calls, self._agent
        spawn = backend.spawn if isinstance(prompt, str) else backend.spawn_chat
        pages = agent.capabilities.max_pages
        handle = spawn(prompt, sampling, priority=agent.priority, model=model, max_pages=pages)
        with agent.lock:
            agent.processes[handle.pid] = handle
        if agent.killed.is_set():  # killed while the call was being spawned
            self._runtime.kill_process(handle)
        return handle

    def _finish_model_call(self, handle: ProcessHandle) -> Result:
        try:
            while True:
                try:
                    return handle.wait(timeout=POLL_S)
                except TimeoutError:
                    continue
        finally:
            with self._agent.lock:
                self._agent.processes.pop(handle.pid, None)

    def _record_model_call(self, entry: TraceEntry, result: Result) -> None:
        usage = self._agent.usage
        usage.prompt_tokens += result.usage.prompt_tokens
        usage.cached_tokens += result.usage.cached_tokens
        usage.completion_tokens += result.usage.completion_tokens
        if self._agent.account is not None:
            self._agent.account.charge(
                result.usage.prompt_tokens
                - result.usage.cached_tokens
                + result.usage.completion_tokens
            )
        entry.output = result.text
        entry.tokens = {
            "prompt": result.usage.prompt_tokens,
            "cached": result.usage.cached_tokens,
            "completion": result.usage.completion_tokens,
        }
        if result.logprobs is not None:
            entry.logprobs = [
                {
                    "piece": step.chosen.piece.decode("utf-8", errors="replace"),
                    "logprob": step.chosen.logprob,
                    "top": {
                        alt.piece.decode("utf-8", errors="replace"): alt.logprob
                        for alt in step.alternatives
                    },
                }
                for step in result.logprobs
            ]
