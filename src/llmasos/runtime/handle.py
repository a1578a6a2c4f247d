"""`llmasos.load_model(name)`: a model loaded in this Python process, ready to predict.

All handles share one in-process ModelManager, so loading several models respects one memory
budget, and two handles on the same name share one engine and one kernel.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, overload

from llmasos.errors import InvalidRequestError
from llmasos.kernel.config import KernelConfig
from llmasos.local import LocalProcessHandle
from llmasos.models.manifest import Manifest
from llmasos.runtime.factory import EngineOptions, model_manager
from llmasos.runtime.manager import ModelManager
from llmasos.sampling import SamplingParams
from llmasos.settings import Settings

_manager: ModelManager | None = None
_manager_lock = threading.Lock()


def default_manager() -> ModelManager:
    """The process-wide model manager (created on first use, with default sizes)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = model_manager(
                KernelConfig(), EngineOptions(), home=Settings.from_environment().home
            )
        return _manager


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is (its manifest) and where it runs."""

    manifest: Manifest
    device: str
    memory_bytes: int


class ModelHandle:
    """A loaded model. `predict` batches a list of prompts through the model's kernel."""

    def __init__(self, manager: ModelManager, name: str) -> None:
        self._manager = manager
        self.name = name

    @property
    def info(self) -> ModelInfo:
        loaded = self._manager.load(self.name)
        manifest = self._manager.repository.show(self.name)  # type: ignore[union-attr]
        return ModelInfo(manifest, loaded.device, loaded.memory_bytes)

    @overload
    def predict(self, prompts: str, **sampling: Any) -> str: ...

    @overload
    def predict(self, prompts: list[str], **sampling: Any) -> list[str]: ...

    def predict(self, prompts: str | list[str], **sampling: Any) -> str | list[str]:
        """The completion of one prompt, or of each prompt of a list (run as one batch)."""
        if isinstance(prompts, str):
            return self.predict([prompts], **sampling)[0]
        if not isinstance(prompts, list) or not prompts:
            raise InvalidRequestError("prompts", "must be a string or a non-empty list of strings")
        params = SamplingParams.build(**sampling)
        with self._manager.lease(self.name) as loaded:  # (re)loaded if it was unloaded
            kernel = loaded.kernel
            with kernel.paused():  # one scheduling decision sees the whole batch
                processes = [kernel.spawn(p, params) for p in prompts]
        for process in processes:
            process.done.wait()
        return [p.result.text for p in processes]  # type: ignore[union-attr]

    def generate(
        self, prompt: str, *, stream: bool = False, **sampling: Any
    ) -> str | Iterator[str]:
        """Like Client.generate_text on this model."""
        params = SamplingParams.build(**sampling)
        with self._manager.lease(self.name) as loaded:
            handle = LocalProcessHandle(loaded.kernel, loaded.kernel.spawn(prompt, params))
        return handle.stream() if stream else handle.wait().text

    def tokenize(self, text: str) -> list[int]:
        with self._manager.lease(self.name) as loaded:
            return loaded.kernel.tokenize(text)

    def unload(self) -> None:
        """Free the model's memory now (it reloads if used again)."""
        self._manager.unload(self.name)

    def __repr__(self) -> str:
        return f"<ModelHandle {self.name}>"


def load_model(name: str | None = None, *, manager: ModelManager | None = None) -> ModelHandle:
    """Load `name` from the repository (the default model if None) and return its handle."""
    manager = manager or default_manager()
    loaded = manager.load(name)
    return ModelHandle(manager, loaded.name)
