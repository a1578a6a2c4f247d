"""Request bodies. Types are strict and unknown fields are refused, so nothing a client sends is
silently ignored. The static bounds are in the schema (and so in the OpenAPI document); what
depends on the model (top_k against its vocabulary, prompt plus max_tokens against its context)
is checked by the kernel and answered 400 or 413 naming the field.

OpenAI fields that LLMasOS does not implement are accepted only at their neutral value
(presence_penalty 0, best_of 1, an empty logit_bias, ...), where ignoring them changes nothing;
the schema says so, and any other value is refused. Integers may be written as integral numbers
(5.0), as JSON Schema allows; strings never stand for numbers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from llmasos.constraint import MAX_CONSTRAINT_BYTES
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


def _integral(value: object) -> object:
    """5.0 -> 5 (JSON Schema counts it an integer); anything else as it is, for strict checks."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def bounded(low: int, high: int) -> Any:
    """An integer from `low` to `high` (the schema says minimum and maximum)."""
    return Annotated[
        int,
        BeforeValidator(_integral),
        Field(ge=low, le=high),
        WithJsonSchema({"type": "integer", "minimum": low, "maximum": high}),
    ]


StopString = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_LENGTH)]
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}(:[a-z0-9][a-z0-9._-]{0,63})?$"
ModelName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# -- chat messages and tools (OpenAI's shapes; chat.py and toolcalls.py check them again for
# the SDK, which takes plain dicts) -------------------------------------------------------------


class TextPart(StrictBody):
    type: Literal["text"]
    text: str


Content = str | list[TextPart]


class SystemMessage(StrictBody):
    role: Literal["system", "developer"]
    content: Content
    name: str | None = None


class UserMessage(StrictBody):
    role: Literal["user"]
    content: Content
    name: str | None = None


class CalledFunction(StrictBody):
    name: ToolName
    arguments: str  # a JSON object, as text


class AssistantToolCall(StrictBody):
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: Literal["function"]
    function: CalledFunction


class AssistantMessage(StrictBody):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[AssistantToolCall] | None = None
    name: str | None = None
    refusal: None = None  # echoed back by clients as null; nothing else is accepted
    function_call: None = None
    audio: None = None
    annotations: None = None


class ToolMessage(StrictBody):
    role: Literal["tool"]
    content: Content
    tool_call_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]


Message = Annotated[
    SystemMessage | UserMessage | AssistantMessage | ToolMessage, Field(discriminator="role")
]
Messages = Annotated[list[Message], Field(min_length=1)]


def messages_as_dicts(messages: list[Any]) -> list[dict[str, Any]]:
    return [m.model_dump(exclude_none=True) for m in messages]


class FunctionSpec(StrictBody):
    name: ToolName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(StrictBody):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(StrictBody):
    name: ToolName


class NamedToolChoice(StrictBody):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(StrictBody):
    include_usage: bool = False


class JsonSchemaFormat(StrictBody):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextFormat(StrictBody):
    type: Literal["text"]


class JsonObjectFormat(StrictBody):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(StrictBody):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")
]


def format_constraint(response_format: object) -> dict[str, Any]:
    """OpenAI's response_format as a constraint: none, any JSON object, or the JSON Schema."""
    if isinstance(response_format, JsonObjectFormat):
        return {"json_schema": {"type": "object"}}
    if isinstance(response_format, JsonSchemaResponseFormat):
        return {"json_schema": response_format.json_schema.json_schema}
    return {}


class SamplingFields(StrictBody):
    """Fields shared by completions, chat completions and native spawns."""

    model: ModelName | None = None
    max_tokens: bounded(1, INT32) | None = None
    temperature: float | None = Field(None, ge=0, le=100)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: bounded(0, INT32) | None = None  # extension
    min_p: float | None = Field(None, ge=0, le=1)  # extension
    repeat_penalty: float | None = Field(None, ge=0.01, le=10)  # extension
    repeat_last_n: bounded(0, INT32) | None = None  # extension
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOP_STRINGS)] | None = None
    seed: bounded(0, SEED_MAX) | None = None
    priority: bounded(-1000, 1000) = 0  # extension: higher runs first
    user: Annotated[str, StringConstraints(max_length=256)] | None = None
    presence_penalty: float | None = Field(None, ge=0, le=0)  # accepted at 0 only
    frequency_penalty: float | None = Field(None, ge=0, le=0)  # accepted at 0 only
    logit_bias: Annotated[dict[str, float], Field(max_length=0)] | None = None  # empty only

    def sampling_params(
        self, extra_stop: tuple[str, ...] = (), *, grammar: str | None = None
    ) -> SamplingParams:
        """Validated SamplingParams; a `grammar` (tool calls) takes the place of any other
        constraint."""
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
    n: bounded(1, MAX_CHOICES) | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None

    def constraint(self) -> dict[str, Any]:
        return format_constraint(self.response_format)


class CompletionRequest(OpenAIRequest):
    prompt: (
        Annotated[str, StringConstraints(min_length=1)]
        | Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)]
    )
    echo: Literal[False] | None = None  # accepted as false only
    best_of: bounded(1, 1) | None = None  # accepted as 1 only
    logprobs: bounded(0, MAX_TOP_LOGPROBS) | None = None
    suffix: Annotated[str, StringConstraints(max_length=0)] | None = None  # empty only

    def logprob_count(self) -> int | None:
        return self.logprobs


class ChatRequest(OpenAIRequest):
    """max_completion_tokens is OpenAI's newer name for max_tokens; given both, generation
    stops at the smaller. tool_choice and parallel_tool_calls only with tools."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "dependentRequired": {"tool_choice": ["tools"], "parallel_tool_calls": ["tools"]}
        },
    )
    messages: Messages
    max_completion_tokens: bounded(1, INT32) | None = None
    logprobs: bool | None = None
    top_logprobs: bounded(0, MAX_TOP_LOGPROBS) | None = None
    tools: Annotated[list[ToolSpec], Field(min_length=1, max_length=64)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None

    def sampling_params(
        self, extra_stop: tuple[str, ...] = (), *, grammar: str | None = None
    ) -> SamplingParams:
        limits = [n for n in (self.max_tokens, self.max_completion_tokens) if n is not None]
        if limits:
            self.max_tokens = min(limits)
        return super().sampling_params(extra_stop, grammar=grammar)

    def logprob_count(self) -> int | None:
        """logprobs: true, or any top_logprobs (which implies them)."""
        if self.logprobs or self.top_logprobs:
            return self.top_logprobs or 0
        return None


class SchemaConstraint(StrictBody):
    json_schema: dict[str, Any]


class GrammarConstraint(StrictBody):
    grammar: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONSTRAINT_BYTES)]


class RegexConstraint(StrictBody):
    regex: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONSTRAINT_BYTES)]


class SpawnFields(SamplingFields):
    """POST /v1/processes: start a process and return its pid at once, from a `prompt` or
    from chat `messages` (rendered with the model's chat template). `constraint`: one of
    {"json_schema": {...}}, {"grammar": GBNF or Lark} or {"regex": ...}; `logprobs` (0-20)
    records log-probabilities with that many alternatives."""

    constraint_: SchemaConstraint | GrammarConstraint | RegexConstraint | None = Field(
        None, alias="constraint"
    )
    logprobs: bounded(0, MAX_TOP_LOGPROBS) | None = None

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)

    def constraint(self) -> dict[str, Any]:
        return {} if self.constraint_ is None else self.constraint_.model_dump()

    def logprob_count(self) -> int | None:
        return self.logprobs


class PromptSpawn(SpawnFields):
    prompt: Annotated[str, StringConstraints(min_length=1)]


class ChatSpawn(SpawnFields):
    messages: Messages


SpawnRequest = PromptSpawn | ChatSpawn


class SignalRequest(StrictBody):
    signal: Literal["kill", "suspend", "resume"] = Field(description="the signal to deliver")


MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}(:[a-z0-9][a-z0-9._-]{0,63})?$"  # NAME[:TAG]


class PriorityRequest(StrictBody):
    priority: bounded(-1000, 1000) = Field(description="higher runs first (as at spawn)")


class ForkCount(StrictBody):
    """POST /v1/processes/{pid}/fork: n children drawing with fresh random seeds..."""

    n: bounded(1, 32)


class ForkSeeds(StrictBody):
    """...or one child per seed."""

    seeds: Annotated[list[bounded(0, SEED_MAX)], Field(min_length=1, max_length=32)]


ForkRequest = ForkCount | ForkSeeds


class ImportRequest(StrictBody):
    """POST /v1/models/import (admin): an https URL on a public address, or a GGUF file under
    one of the server's --import-dir directories."""

    source: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    name: Annotated[str, StringConstraints(max_length=129)] | None = None
    sha256: Annotated[str, StringConstraints(max_length=71)] | None = None


class EmbeddingRequest(StrictBody):
    """POST /v1/embeddings: one text or a list of texts, each within the model's input limit.
    `dimensions` may only name the model's own (these models are not trained to be cut)."""

    input: (
        Annotated[str, StringConstraints(min_length=1)]
        | Annotated[
            list[Annotated[str, StringConstraints(min_length=1)]],
            Field(min_length=1, max_length=2048),
        ]
    )
    model: ModelName | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: bounded(1, INT32) | None = None
    user: Annotated[str, StringConstraints(max_length=256)] | None = None
