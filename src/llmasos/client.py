"""The Python SDK. `llmasos.Client()` runs an in-process kernel with the default model;
`llmasos.Client(base_url="http://host:8000")` offers the same methods against a server."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from llmasos.agents.agent import AgentInfo, AgentLimits
from llmasos.agents.handle import AgentHandle
from llmasos.agents.react import AgentSpec, check_spec_tools, run_spec
from llmasos.agents.runtime import AgentRuntime
from llmasos.auth.capabilities import Capabilities
from llmasos.engine.base import Engine
from llmasos.errors import (
    EngineError,
    IncompleteOutputError,
    InvalidRequestError,
    LLMasOSError,
    ProcessError,
)
from llmasos.handles import Backend, ProcessHandle
from llmasos.jobs.job_manager import JobManager
from llmasos.jobs.remote_jobs import RemoteJobs
from llmasos.jobs.sdk import LOCAL_OWNER, Jobs, TaskMethods, local_jobs
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.kernel import Kernel
from llmasos.kernel.process import FinishReason, ProcessInfo
from llmasos.kernel.stats import KernelStatus, MemoryReport
from llmasos.local import LocalBackend
from llmasos.remote_storage import RemoteAgentMemory, RemoteFileSystem
from llmasos.runtime.embedding import LocalEmbed
from llmasos.runtime.factory import EngineOptions, load_engine
from llmasos.sampling import SamplingParams
from llmasos.security.crypto import parse_master_key
from llmasos.settings import Settings
from llmasos.storage.agent_memory import AgentMemory
from llmasos.storage.fs import FileSystemView
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage
from llmasos.storage.virtual_context import Conversation, VirtualContext
from llmasos.tools.builtins import builtin_tools
from llmasos.tools.registry import ToolRegistry


class Client(TaskMethods):
    """An LLMasOS session.

    In-process (no base_url):
      policy       fcfs | sjf | rr | priority | fair (default fcfs)
      model        a model name or a path to a GGUF file (default: the packaged Gemma 3 270M)
      Other keywords are KernelConfig fields (max_running, quantum, page_size, swap_bytes,
      max_pages_per_owner, ...: see llmasos.kernel.config) or EngineOptions fields
      (num_slots, context_length, max_batch_tokens, n_threads, kv_cache_type). max_running
      defaults to at most the engine's slots. `engine` runs the kernel on an engine you built
      yourself. `storage` is the file system and agent memory (default: opened from the
      settings: SQLite under $LLMASOS_HOME/storage, or LLMASOS_DATABASE_URL); the in-process
      client acts as owner "local".
    Remote:
      base_url     an `llmasos serve` server; the server's own settings apply
      api_key      its API key (default: $LLMASOS_API_KEY)
    """

    def __init__(
        self,
        policy: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        engine: Engine | None = None,
        storage: Storage | None = None,
        **options: Any,
    ) -> None:
        self._backend: Backend
        self._agents: AgentRuntime | None = None
        self._storage: Storage | None = None
        self._embed: LocalEmbed | None = None
        self._job_manager: Jobs | None = None
        self.tools = ToolRegistry(builtin_tools())
        """The tools agents may call: the built-ins, and yours (tools.register_function)."""
        if base_url is not None:
            if policy is not None or engine is not None or storage is not None or options:
                raise InvalidRequestError(
                    "base_url",
                    "the server's settings apply; set policy and engine options "
                    "with `llmasos serve`",
                )
            from llmasos.remote import HttpBackend

            key = api_key or os.environ.get("LLMASOS_API_KEY")
            self._backend = HttpBackend(base_url, api_key=key)
            self.fs: FileSystemView | RemoteFileSystem = RemoteFileSystem(self._backend.http)
            """The file system (see llmasos.storage.fs): write, read, history, rollback, ..."""
            self._job_manager = RemoteJobs(self._backend.http)
            return
        kernel_fields = {f.name for f in dataclasses.fields(KernelConfig)}
        engine_fields = {f.name for f in dataclasses.fields(EngineOptions)}
        for name in options.keys() - kernel_fields - engine_fields:
            raise InvalidRequestError(name, "unknown option; see KernelConfig and EngineOptions")
        kernel_options = {k: v for k, v in options.items() if k in kernel_fields}
        engine_options = {k: v for k, v in options.items() if k in engine_fields}
        settings = Settings.from_environment()
        if settings.master_key and "swap_key" not in kernel_options:  # seal swap files too
            kernel_options["swap_key"] = parse_master_key(settings.master_key)
        config = KernelConfig(policy=policy or "fcfs", **kernel_options)  # checked before a load
        if engine is None:
            engine = load_engine(model, EngineOptions(**engine_options))
        elif engine_options:
            raise InvalidRequestError(next(iter(engine_options)), "cannot size a given engine")
        if "max_running" not in kernel_options:  # the default fits the engine's slots
            running = min(config.max_running, engine.info.num_slots, engine.info.max_batch_tokens)
            config = dataclasses.replace(config, max_running=running)
        self._pids = pids = itertools.count(1)  # one pid space: processes, agents, jobs
        self._backend = LocalBackend(Kernel(engine, config, pids=pids))
        self._storage = storage or Storage.from_settings()
        self._embed = LocalEmbed(settings.home)
        self.fs = self._storage.files(Principal(LOCAL_OWNER))
        self._agents = AgentRuntime(
            self._backend, self.tools, pids, storage=self._storage, embed=self._embed
        )

    @property
    def kernel(self) -> Kernel:
        """The in-process kernel (for introspection); not available with base_url."""
        if not isinstance(self._backend, LocalBackend):
            raise LLMasOSError("kernel: this client talks to a server; it has no local kernel")
        return self._backend.kernel

    @property
    def model(self) -> str:
        return self._backend.model

    def spawn(
        self, prompt: str, *, priority: int = 0, model: str | None = None, **sampling: Any
    ) -> ProcessHandle:
        """Start a generation as a process and return its handle at once.

        Sampling keywords: max_tokens, temperature, top_k, top_p, min_p, repeat_penalty,
        repeat_last_n, seed, stop; at most one constraint: json_schema (a dict), grammar (GBNF
        or Lark) or regex; logprobs (0-20 alternatives per token, in the result).
        """
        SamplingParams.build(**sampling)  # fail fast, here, on a bad field
        return self._backend.spawn(prompt, sampling, priority=priority, model=model)

    def generate_text(
        self, prompt: str, *, stream: bool = False, **options: Any
    ) -> str | Iterator[str]:
        """Generate a completion of `prompt`: the text, or with stream=True an iterator of
        text pieces. Takes spawn()'s keywords."""
        return _text_of(self.spawn(prompt, **options), stream)

    def generate_json(self, prompt: str, schema: dict[str, Any], **options: Any) -> Any:
        """The JSON value, parsed, that continues `prompt` and validates against the JSON
        Schema `schema` (the output is constrained to it). Takes spawn()'s keywords. Raises
        IncompleteOutputError when max_tokens ends the output before the value is complete."""
        result = self.spawn(prompt, json_schema=schema, **options).wait()
        if result.finish_reason is FinishReason.ERROR:
            raise EngineError(result.error or "the engine failed")
        if result.finish_reason is not FinishReason.STOP:
            raise IncompleteOutputError(
                f"max_tokens: the JSON value was not complete after {len(result.token_ids)} "
                "tokens; raise max_tokens"
            )
        return json.loads(result.text)

    def chat(
        self,
        messages: list[dict[str, str]],
        *,
        stream: bool = False,
        priority: int = 0,
        model: str | None = None,
        **sampling: Any,
    ) -> str | Iterator[str]:
        """The assistant's reply to chat `messages` ([{"role": ..., "content": ...}]), rendered
        with the model's chat template (see llmasos.chat for the fallback)."""
        SamplingParams.build(**sampling)
        handle = self._backend.spawn_chat(messages, sampling, priority=priority, model=model)
        return _text_of(handle, stream)

    def process(self, pid: int) -> ProcessHandle:
        """A handle on an existing process, e.g. one spawned by another client."""
        return self._backend.attach(pid)

    def ps(self) -> list[ProcessInfo]:
        """Every process the kernel knows, live or recently ended, oldest first."""
        return self._backend.ps()

    def status(self) -> KernelStatus:
        """Counters, memory and process counts of the kernel."""
        return self._backend.status()

    def memory(self) -> MemoryReport:
        """KV memory: pages used, cached and free, each process's pages, prefix-cache hits and
        misses, and swap use."""
        return self._backend.memory()

    def run_agent(
        self,
        fn: Callable[..., Any],
        *args: Any,
        priority: int = 0,
        limits: AgentLimits | dict[str, Any] | None = None,
        name: str | None = None,
        capabilities: Capabilities | None = None,
    ) -> AgentHandle:
        """Run `fn(ctx, *args)` as an agent: a process of its own whose model calls, tools and
        messages go through the syscalls of `ctx` (see llmasos.agents.context). Returns a
        handle at once. `limits`: AgentLimits(max_steps, token_budget, wall_time_s);
        `capabilities`: what it and its children may touch (llmasos.Capabilities)."""
        agent = self._agent_runtime().start(
            fn, args, name=name, priority=priority, limits=limits, capabilities=capabilities
        )
        return AgentHandle(self._agent_runtime(), agent.pid)

    def run_spec(self, spec: AgentSpec | dict[str, Any], task: str) -> AgentHandle:
        """Run a declarative agent (an AgentSpec, or its fields as from YAML) on `task` with the
        built-in tool-using loop (llmasos.agents.react); its value is the final answer."""
        if not isinstance(spec, AgentSpec):
            spec = AgentSpec.from_dict(spec)
        if not isinstance(task, str) or not task:
            raise InvalidRequestError("task", "must be a non-empty string")
        check_spec_tools(spec, self.tools)
        return self.run_agent(
            run_spec, spec, task, priority=spec.priority, limits=spec.limits, name=spec.name
        )

    def agents(self, *, include_ended: bool = False) -> list[AgentInfo]:
        """The agents, with their live model calls and child agents."""
        return self._agent_runtime().agents(include_ended=include_ended)

    def agent(self, pid: int) -> AgentHandle:
        self._agent_runtime().get(pid)
        return AgentHandle(self._agent_runtime(), pid)

    def pipe(
        self, source: ProcessHandle, prompt: str | Callable[[str], str], **sampling: Any
    ) -> ProcessHandle:
        """Feed `source`'s output into a new process, as a shell pipes programs: its prompt is
        `prompt` with "{input}" replaced by that output (or prompt(output) for a function).
        Returns once `source` ended (its output is whole), with the new process's handle."""
        result = source.wait()
        if result.finish_reason in (FinishReason.ERROR, FinishReason.KILLED):
            raise ProcessError(source.pid, f"ended {result.finish_reason.value}; nothing to pipe")
        if callable(prompt):
            text = prompt(result.text)
        elif "{input}" in prompt:
            text = prompt.replace("{input}", result.text)
        else:
            raise InvalidRequestError("prompt", 'must hold "{input}" where the output goes')
        return self.spawn(text, **sampling)

    def agent_memory(self, agent: str | None = None) -> AgentMemory | RemoteAgentMemory:
        """The memory of one of your agents (by name), or your own with agent=None: core
        blocks, the recall log and archival entries, searched by meaning."""
        if self._storage is None:
            return RemoteAgentMemory(self._backend.http, agent)  # type: ignore[attr-defined]
        return self._storage.memory(Principal(LOCAL_OWNER, agent), self._embed)

    def conversation(
        self, agent: str | None = None, *, window_tokens: int | None = None, **sampling: Any
    ) -> Conversation:
        """A chat whose history may outgrow the context window: turns go to the recall memory
        of `agent` (your own memory with None), the oldest are paged out past 75% of
        `window_tokens` (default: the engine's context less max_tokens), and the ones related
        to each new message are recalled (llmasos.storage.virtual_context). In-process only
        for now. `sampling`: spawn()'s keywords for the answers (default max_tokens 128)."""
        if self._storage is None:
            raise InvalidRequestError("base_url", "conversations run in an in-process Client")
        sampling = {"max_tokens": 128, **sampling}
        SamplingParams.build(**sampling)
        window = window_tokens or self.kernel.engine.info.context_length - sampling["max_tokens"]
        memory = self.agent_memory(agent)

        def count(text: str) -> int:
            return len(self.kernel.tokenize(text))

        def answer(prompt: str) -> str:
            return str(self.generate_text(prompt, **sampling))

        context = VirtualContext(memory, count, window)  # type: ignore[arg-type]
        return Conversation(context, answer)

    def _agent_runtime(self) -> AgentRuntime:
        if self._agents is None:
            raise InvalidRequestError(
                "base_url",
                "agents run in an in-process Client for now; a server runs them with "
                "POST /v1/agents",
            )
        return self._agents

    def _jobs(self) -> Jobs:
        """Training jobs: the server's, or (in-process) this machine's, started on first use."""
        if self._job_manager is None:
            self._job_manager = local_jobs(self._pids)
        return self._job_manager

    def close(self) -> None:
        """In-process: stop the agents and the kernel (live processes are killed) and the
        running training job (checkpointed; it goes on at the next start). Remote:
        disconnect."""
        if self._agents is not None:
            self._agents.close()
        if isinstance(self._job_manager, JobManager):
            self._job_manager.close()
        self._backend.close()
        if self._embed is not None:
            self._embed.close()
        if self._storage is not None:
            self._storage.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _text_of(handle: ProcessHandle, stream: bool) -> str | Iterator[str]:
    return handle.stream() if stream else handle.wait().text
