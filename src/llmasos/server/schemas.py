"""Request bodies. Types are strict and unknown fields are refused, so nothing a client sends is
silently ignored. Ranges are checked by SamplingParams.build, the same check the SDK uses.

OpenAI fields that LLMasOS does not implement are accepted only at their neutral value (n=1,
presence_penalty=0, ...), where ignoring them changes nothing; any other value is refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmasos.errors import InvalidRequestError
from llmasos.sampling import SamplingParams, merge_stops

NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "best_of": (None, 1),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "echo": (None, False),
    "logprobs": (None, False, 0),
    "top_logprobs": (None, 0),
    "suffix": (None, ""),
    "logit_bias": (None, {}),
}


SAMPLING_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "repeat_last_n",
    "seed",
)


CONSTRAINT_FIELDS = ("json_schema", "grammar", "regex", "logprobs")


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(StrictBody):
    include_usage: bool = False


class SamplingFields(StrictBody):
    """Fields shared by completions, chat completions and native spawns."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None  # extension
    min_p: float | None = None  # extension
    repeat_penalty: float | None = None  # extension
    repeat_last_n: int | None = None  # extension
    stop: str | list[str] | None = None
    seed: int | None = None
    priority: int = 0  # extension: higher runs first under the priority policy
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None

    def sampling_params(self, extra_stop: tuple[str, ...] = ()) -> SamplingParams:
        """Refuse non-neutral unsupported fields, then build validated SamplingParams."""
        for name, allowed in NEUTRAL_VALUES.items():
            value = getattr(self, name, None)
            if value not in allowed:
                neutral = [v for v in allowed if v is not None]
                raise InvalidRequestError(
                    name, f"is not supported; only {neutral[0]!r} is accepted, got {value!r}"
                )
        names = SAMPLING_FIELDS + self.extra_sampling_fields()
        given = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        return SamplingParams.build(**given, stop=merge_stops(self.stop, extra_stop))

    def extra_sampling_fields(self) -> tuple[str, ...]:
        """Fields of a subclass that SamplingParams.build takes as they are."""
        return ()


class CompletionRequest(SamplingFields):
    prompt: str | list[str]
    stream: bool = False
    stream_options: StreamOptions | None = None
    echo: bool | None = None
    best_of: int | None = None
    logprobs: int | None = None
    suffix: str | None = None


class ChatRequest(SamplingFields):
    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_completion_tokens: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None

    def sampling_params(self, extra_stop: tuple[str, ...] = ()) -> SamplingParams:
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise InvalidRequestError(
                    "max_completion_tokens", "differs from max_tokens; send one of the two"
                )
            self.max_tokens = self.max_completion_tokens
        return super().sampling_params(extra_stop)


class SpawnRequest(SamplingFields):
    """POST /v1/processes: start a process and return its pid at once. Send a `prompt`, or
    chat `messages` (rendered with the model's chat template). At most one constraint:
    `json_schema` (an object), `grammar` (GBNF or Lark) or `regex`; `logprobs` (0-20) records
    log-probabilities with that many alternatives."""

    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None
    regex: str | None = None
    logprobs: int | None = None

    def extra_sampling_fields(self) -> tuple[str, ...]:
        return CONSTRAINT_FIELDS


class SignalRequest(StrictBody):
    signal: Literal["kill", "suspend", "resume"] = Field(description="the signal to deliver")


class ForkRequest(StrictBody):
    """POST /v1/processes/{pid}/fork: n children, each drawing with its seed (default random)."""

    n: int = 1
    seeds: list[int] | None = None


class ImportRequest(StrictBody):
    """POST /v1/models/import (admin): an https URL on a public address, or a GGUF file under
    one of the server's --import-dir directories."""

    source: str
    name: str | None = None
    sha256: str | None = None


class EmbeddingRequest(StrictBody):
    """POST /v1/embeddings: one text or a list of texts, each within the model's input limit.
    `dimensions` may only name the model's own (these models are not trained to be cut)."""

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
