"""Model calls on a server's models, for its agents: each call is a process on the requested
model's kernel (loaded if needed), under one owner."""

from __future__ import annotations

from collections.abc import Callable

from llmasos.chat import chat_spawn_args
from llmasos.handles import ModelCalls, ProcessHandle
from llmasos.local import LocalProcessHandle
from llmasos.runtime.manager import ModelManager
from llmasos.sampling import SamplingParams


class ManagerModelCalls(ModelCalls):
    def __init__(
        self, models: ModelManager, owner: str, charge: Callable[[int], None] | None = None
    ) -> None:
        """`charge(max_tokens)` runs before each call (a rate limit may refuse it)."""
        self._models = models
        self.owner = owner
        self._charge = charge

    def spawn(
        self,
        prompt: str,
        sampling: dict[str, object],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle:
        params = SamplingParams.build(**sampling)  # type: ignore[arg-type]
        if self._charge is not None:
            self._charge(params.max_tokens)
        with self._models.lease(model) as loaded:
            process = loaded.kernel.spawn(
                prompt, params, priority=priority, owner=self.owner, max_pages=max_pages
            )
            return LocalProcessHandle(loaded.kernel, process)

    def spawn_chat(
        self,
        messages: object,
        sampling: dict[str, object],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle:
        with self._models.lease(model) as loaded:
            info = loaded.kernel.engine.info
        prompt, stop = chat_spawn_args(messages, sampling.get("stop"), info)
        return self.spawn(
            prompt, {**sampling, "stop": stop}, priority=priority, model=model, max_pages=max_pages
        )
