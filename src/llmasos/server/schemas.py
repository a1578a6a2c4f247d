"""Request bodies. Types are strict and unknown fields are refused, so nothing a client sends is
silently ignored. The static bounds are in the schema (and so in the OpenAPI document); what
depends on the model (top_k against its vocabulary, prompt plus max_tokens against its context)
is checked by the kernel and answered 400 or 413 naming the field.

OpenAI fields that LLMasOS does not implement are accepted only at their neutral value
(presence_penalty=0, best_of=1, ...), where ignoring them changes nothing; any other value is
refused.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llmasos.constraint import MAX_CONSTRAINT_BYTES
from llmasos.errors import InvalidRequestError
from llmasos.sampling import (
    MAX_STOP_LENGTH,
    MAX_STOP_STRINGS,
    MAX_TOP_LOGPROBS,
    SamplingParams,
    merge_stops,
)

INT32 = 2**31 - 1
SEED_MAX = 2**32 - 2
MAX_CHOICES = 16
MAX_TEXT_BYTES = 8 * 1024 * 1024  # the body limit: no string can be longer
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "best_of": (None, 1),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "echo": (None, False),
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

StopString = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_LENGTH)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StreamOptions(StrictBody):
    include_usage: bool = False


class JsonSchemaFormat(StrictBody):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(StrictBody):
    """OpenAI's response_format: text (no constraint), any JSON object, or a JSON Schema."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    def constraint(self) -> dict[str, Any]:
        if self.type == "json_object":
            return {"json_schema": {"type": "object"}}
        if self.type == "json_schema":
            if self.json_schema is None:
                raise InvalidRequestError("response_format.json_schema", "is required")
            return {"json_schema": self.json_schema.json_schema}
        return {}


class SamplingFields(StrictBody):
    """Fields shared by completions, chat completions and native spawns."""

    model: ModelName | None = None
    max_tokens: int | None = Field(None, ge=1, le=INT32)
    temperature: float | None = Field(None, ge=0, le=100)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=INT32)  # extension
    min_p: float | None = Field(None, ge=0, le=1)  # extension
    repeat_penalty: float | None = Field(None, ge=0.01, le=10)  # extension
    repeat_last_n: int | None = Field(None, ge=0, le=INT32)  # extension
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    priority: int = Field(0, ge=-1000, le=1000)  # extension: higher runs first
    user: Annotated[str, StringConstraints(max_length=256)] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None

    def sampling_params(
        self, extra_stop: tuple[str, ...] = (), *, grammar: str | None = None
    ) -> SamplingParams:
        """Refuse non-neutral unsupported fields, then build validated SamplingParams; a
        `grammar` (tool calls) takes the place of any other constraint."""
        for name, allowed in NEUTRAL_VALUES.items():
            value = getattr(self, name, None)
            if value not in allowed:
                neutral = [v for v in allowed if v is not None]
                raise InvalidRequestError(
                    name, f"is not supported; only {neutral[0]!r} is accepted, got {value!r}"
                )
        given = {name: getattr(self, name) for name in SAMPLING_FIELDS}
        given = {name: value for name, value in given.items() if value is not None}
        output = {"grammar": grammar} if grammar is not None else self.constraint()
        stop = merge_stops(self.stop, extra_stop)
        return SamplingParams.build(**given, **output, logprobs=self.logprob_count(), stop=stop)

    def constraint(self) -> dict[str, Any]:
        """The output constraint the request asks for, as SamplingParams.build takes it."""
        return {}

    def logprob_count(self) -> int | None:
        """How many alternatives per token to record (None: no log-probabilities)."""
        return None


class OpenAIRequest(SamplingFields):
    n: int | None = Field(None, ge=1, le=MAX_CHOICES)
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None

    def constraint(self) -> dict[str, Any]:
        return {} if self.response_format is None else self.response_format.constraint()


class CompletionRequest(OpenAIRequest):
    prompt: (
        Annotated[str, StringConstraints(min_length=1)]
        | Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)]
    )
    echo: bool | None = None
    best_of: int | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    suffix: str | None = None

    def logprob_count(self) -> int | None:
        return self.logprobs


class ChatRequest(OpenAIRequest):
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    max_completion_tokens: int | None = Field(None, ge=1, le=INT32)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    tools: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=64)] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def sampling_params(
        self, extra_stop: tuple[str, ...] = (), *, grammar: str | None = None
    ) -> SamplingParams:
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise InvalidRequestError(
                    "max_completion_tokens", "differs from max_tokens; send one of the two"
                )
            self.max_tokens = self.max_completion_tokens
        return super().sampling_params(extra_stop, grammar=grammar)

    def logprob_count(self) -> int | None:
        if self.top_logprobs is not None and not self.logprobs:
            raise InvalidRequestError("top_logprobs", "needs logprobs: true")
        return (self.top_logprobs or 0) if self.logprobs else None


class SpawnRequest(SamplingFields):
    """POST /v1/processes: start a process and return its pid at once. Send a `prompt`, or
    chat `messages` (rendered with the model's chat template). At most one constraint:
    `json_schema` (an object), `grammar` (GBNF or Lark) or `regex`; `logprobs` (0-20) records
    log-probabilities with that many alternatives."""

    prompt: Annotated[str, StringConstraints(min_length=1)] | None = None
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)] | None = None
    json_schema: dict[str, Any] | None = None
    grammar: Annotated[str, StringConstraints(max_length=MAX_CONSTRAINT_BYTES)] | None = None
    regex: Annotated[str, StringConstraints(max_length=MAX_CONSTRAINT_BYTES)] | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)

    def constraint(self) -> dict[str, Any]:
        return {"json_schema": self.json_schema, "grammar": self.grammar, "regex": self.regex}

    def logprob_count(self) -> int | None:
        return self.logprobs


class SignalRequest(StrictBody):
    signal: Literal["kill", "suspend", "resume"] = Field(description="the signal to deliver")


class ForkRequest(StrictBody):
    """POST /v1/processes/{pid}/fork: n children, each drawing with its seed (default random)."""

    n: int = Field(1, ge=1, le=32)
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] | None = None


class ImportRequest(StrictBody):
    """POST /v1/models/import (admin): an https URL on a public address, or a GGUF file under
    one of the server's --import-dir directories."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    name: Annotated[str, StringConstraints(max_length=129)] | None = None
    sha256: Annotated[str, StringConstraints(max_length=71)] | None = None


class EmbeddingRequest(StrictBody):
    """POST /v1/embeddings: one text or a list of texts, each within the model's input limit.
    `dimensions` may only name the model's own (these models are not trained to be cut)."""

    input: str | Annotated[list[str], Field(max_length=2048)]
    model: ModelName | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=INT32)
    user: Annotated[str, StringConstraints(max_length=256)] | None = None
