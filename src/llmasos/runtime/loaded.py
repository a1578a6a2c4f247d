"""The model manager's records: a loaded model, a model being loaded, a row of `models ps`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from llmasos.engine.base import Embedder
from llmasos.errors import UnprocessableError
from llmasos.kernel.kernel import Kernel
from llmasos.models.default import DEFAULT_EMBEDDING_MODEL
from llmasos.models.placement import Device


@dataclass(eq=False)
class LoadedModel:
    name: str
    runner: Kernel | Embedder  # a generation model's kernel, or an embedding model's embedder
    device: str
    memory_bytes: int
    keep_alive_s: float | None  # None: never unloaded for idleness
    loaded_at: float
    last_used: float
    pinned: bool = False  # never unloaded (the model a server was started with)
    leases: int = 0  # calls using the model right now

    @property
    def kernel(self) -> Kernel:
        if not isinstance(self.runner, Kernel):
            raise UnprocessableError(
                "model", f"{self.name} is an embedding model; use it with /v1/embeddings"
            )
        return self.runner

    @property
    def embedder(self) -> Embedder:
        if isinstance(self.runner, Kernel):
            raise UnprocessableError(
                "model",
                f"{self.name} generates text; embed with an embedding model such as "
                f"{DEFAULT_EMBEDDING_MODEL}",
            )
        return self.runner

    @property
    def live_processes(self) -> int:
        return self.runner.num_live_processes if isinstance(self.runner, Kernel) else 0

    @property
    def idle(self) -> bool:
        return not self.pinned and self.leases == 0 and self.live_processes == 0


@dataclass(eq=False)
class Loading:
    """A model being loaded: its reserved bytes, and what waiters get when it is done."""

    device: Device
    memory_bytes: int
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    waiters: int = 0  # callers that came for it while it loaded


@dataclass(frozen=True)
class LoadedModelInfo:
    """A row of `llmasos models ps`."""

    name: str
    device: str
    memory_bytes: int
    live_processes: int
    idle_s: float
    keep_alive_s: float | None
