"""The design's job SDK types: TrainingTask (what to train), DP (its privacy budget), and
TaskStatus (what get_task_status answers).

    task = TrainingTask(model="gemma3-270m:q4_k_m", data="train.jsonl", method="lora",
                        epochs=1, learning_rate=2e-4, output="mine:lora", privacy=DP(epsilon=8))

Every field is checked when the task is made (InvalidRequestError naming the field and its
limit), and its data, model and output name when it is submitted. What only training can find
(a sample longer than max_tokens_per_sample, a privacy budget that no step fits) fails the job
early, with the same kind of error.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from llmasos.errors import InvalidRequestError, UnprocessableError
from llmasos.models.manifest import full_name

METHODS = ("lora",)
MAX_EPOCHS = 100
MAX_BATCH_SIZE = 64
MAX_LORA_RANK = 256
MAX_SEQUENCE_TOKENS = 4096
MAX_CHECKPOINT_EVERY = 100_000
MAX_STEP_TOKENS = 4096  # about 4 GiB of float32 logits a step over the default's 262k vocabulary
BACKGROUND_PRIORITY = -10  # jobs run below interactive work unless asked otherwise


class TaskState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUSPENDED = "suspended"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ENDED = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


def _number(name: str, value: Any, low: float, high: float, *, whole: bool = False) -> None:
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "a whole number" if whole else "a number"
        raise InvalidRequestError(name, f"must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequestError(name, f"must be a finite number, got {value!r}")
    if not low <= value <= high:  # compared before any float(): a huge int is just too big
        raise InvalidRequestError(name, f"must be between {low} and {high}, got {value}")


@dataclass(frozen=True)
class DP:
    """Differentially private training (DP-SGD): each sample's gradient is clipped to
    `max_grad_norm` and Gaussian noise is added, so that the whole job spends at most
    (`epsilon`, `delta`). `noise_multiplier` None picks the noise that spends exactly the
    budget over the planned epochs; given, the job stops early when the next step would
    overspend."""

    epsilon: float
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None

    def __post_init__(self) -> None:
        _number("privacy.epsilon", self.epsilon, 0.01, 1000)
        _number("privacy.delta", self.delta, 1e-12, 0.1)
        _number("privacy.max_grad_norm", self.max_grad_norm, 1e-6, 1e6)
        if self.noise_multiplier is not None:
            _number("privacy.noise_multiplier", self.noise_multiplier, 0.1, 100)


@dataclass(frozen=True)
class TrainingTask:
    """A fine-tuning job. `data` is a JSONL file of {"text": ...} or {"messages": [...]}
    records (a path when submitted from Python; the SDK sends its contents to a server)."""

    model: str
    data: str
    method: str = "lora"
    epochs: int = 1
    learning_rate: float = 2e-4
    output: str | None = None  # the model name the result is registered as
    privacy: DP | None = None
    batch_size: int = 4
    lora_rank: int = 8
    max_tokens_per_sample: int = 256  # longer samples are refused, never cut
    checkpoint_every: int = 10  # steps
    seed: int = 0
    priority: int = BACKGROUND_PRIORITY

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise InvalidRequestError("model", "must name a model in the repository")
        if not isinstance(self.data, str) or not self.data:
            raise InvalidRequestError("data", "must be the path of a JSONL file")
        if self.method not in METHODS:
            raise InvalidRequestError(
                "method", f"must be one of {list(METHODS)}, got {self.method!r}"
            )
        if self.output is not None:
            try:
                full_name(self.output)
            except InvalidRequestError as error:
                raise InvalidRequestError("output", error.reason) from None
        if self.privacy is not None and not isinstance(self.privacy, DP):
            raise InvalidRequestError("privacy", "must be llmasos.DP(epsilon, delta, ...) or None")
        _number("epochs", self.epochs, 1, MAX_EPOCHS, whole=True)
        _number("learning_rate", self.learning_rate, 1e-8, 1.0)
        _number("batch_size", self.batch_size, 1, MAX_BATCH_SIZE, whole=True)
        _number("lora_rank", self.lora_rank, 1, MAX_LORA_RANK, whole=True)
        _number(
            "max_tokens_per_sample", self.max_tokens_per_sample, 8, MAX_SEQUENCE_TOKENS, whole=True
        )
        _number("checkpoint_every", self.checkpoint_every, 1, MAX_CHECKPOINT_EVERY, whole=True)
        _number("seed", self.seed, 0, 2**31 - 1, whole=True)
        if self.batch_size * self.max_tokens_per_sample > MAX_STEP_TOKENS:
            raise UnprocessableError(
                "batch_size",
                f"batch_size x max_tokens_per_sample is at most {MAX_STEP_TOKENS} tokens a step "
                "(the output layer's activations grow with it)",
            )
        _number("priority", self.priority, -1000, 1000, whole=True)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: Any) -> TrainingTask:
        """A task from its JSON form; InvalidRequestError naming an unknown or bad field."""
        if not isinstance(body, dict):
            raise InvalidRequestError("task", "must be a JSON object")
        known = {f.name for f in fields(cls)}
        for name in body.keys() - known:
            raise InvalidRequestError(name, f"unknown field; known: {sorted(known)}")
        values = dict(body)
        privacy = values.get("privacy")
        if isinstance(privacy, dict):
            dp_fields = {f.name for f in fields(DP)}
            for name in privacy.keys() - dp_fields:
                raise InvalidRequestError(f"privacy.{name}", f"unknown; known: {sorted(dp_fields)}")
            if "epsilon" not in privacy:
                raise InvalidRequestError("privacy.epsilon", "is required")
            values["privacy"] = DP(**privacy)
        for name in ("model", "data"):
            if name not in values:
                raise InvalidRequestError(name, "is required")
        return cls(**values)


@dataclass
class TaskStatus:
    """Where a job stands. `progress` runs 0 to 1; `epsilon` is the privacy spent so far (None
    without DP); `output_model` is the model name to serve once it succeeded."""

    id: str
    state: TaskState
    owner: str
    pid: int
    priority: int
    model: str
    method: str
    progress: float = 0.0
    step: int = 0
    total_steps: int = 0
    epoch: int = 0
    loss: float | None = None
    epsilon: float | None = None
    eta_s: float | None = None
    error: str | None = None
    output_model: str | None = None
    model_owner: str | None = None  # whose private model the output is (None: shared)
    message: str | None = None  # why it stopped early (the privacy budget), what it is doing
    data_cached: bool | None = None  # the tokenised data came from the content-hash cache
    data_split: dict[str, int] | None = None  # records tokenised on each cluster replica
    samples: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    checkpoint_step: int = 0  # the step its latest checkpoint holds
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskStatus:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = TaskState(values["state"])
        return cls(**values)


def wait_for_end(
    status_of: Callable[[str], TaskStatus], task_id: str, timeout: float | None, poll_s: float
) -> TaskStatus:
    """Poll the job's status until it ended (or `timeout` s passed); the last status."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        status = status_of(task_id)
        if status.state in ENDED or (deadline is not None and time.monotonic() >= deadline):
            return status
        time.sleep(poll_s)
