"""The OpenAI surface of a real server, through the official openai package: response_format,
tools and tool_choice (whole and streamed, with a second turn carrying the tool's answer),
logprobs, n as forks, seed, user, models.retrieve."""

from __future__ import annotations

import json
import math

import httpx
import jsonschema
import openai
import pytest

from tests.integration.test_structured import SCHEMAS

MODEL = "gemma3-270m"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 20},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Adds two integers.",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "minimum": -1000, "maximum": 1000},
                "b": {"type": "integer", "minimum": -1000, "maximum": 1000},
            },
            "required": ["a", "b"],
            "additionalProperties": False,
        },
    },
}
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, ADD)}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def oai(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def assert_valid_calls(calls) -> None:
    assert calls
    for call in calls:
        assert call.type == "function" and call.id
        jsonschema.validate(json.loads(call.function.arguments), PARAMETERS[call.function.name])


@pytest.mark.parametrize("name", ["nested objects", "enums", "bounded numbers"])
def test_response_format_json_schema_gives_content_that_validates(oai, name):
    reply = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": f"Give a record ({name})."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "record", "schema": SCHEMAS[name], "strict": True},
        },
        max_tokens=150,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(reply.choices[0].message.content), SCHEMAS[name])


def test_response_format_json_object_streams_a_json_object(oai):
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "A JSON object about a cat:"}],
        response_format={"type": "json_object"},
        max_tokens=120,
        temperature=0,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    if chunks[-1].choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # max_tokens cut it: still a prefix of a JSON object
        assert text.lstrip().startswith("{")


@pytest.mark.parametrize(
    "tool_choice", ["required", {"type": "function", "function": {"name": "add"}}]
)
def test_forced_tool_calls_have_arguments_that_validate(oai, tool_choice):
    reply = oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is 2 plus 3?"}],
        tools=[WEATHER, ADD],
        tool_choice=tool_choice,
        parallel_tool_calls=False,
        max_tokens=80,
        temperature=0,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert_valid_calls(choice.message.tool_calls)
    assert len(choice.message.tool_calls) == 1
    if isinstance(tool_choice, dict):
        assert choice.message.tool_calls[0].function.name == "add"


def test_a_two_turn_exchange_with_a_tool_message_whole_and_streamed(oai):
    first = oai.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=80,
        parallel_tool_calls=False, temperature=0,
    )  # fmt: skip
    call = first.choices[0].message.tool_calls[0]
    assert_valid_calls([call])
    second_turn = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
    ]
    answer = oai.chat.completions.create(
        model=MODEL, messages=second_turn, tools=[WEATHER], max_tokens=24, temperature=0
    )
    assert answer.choices[0].message.role == "assistant"
    streamed = oai.chat.completions.create(
        model=MODEL, messages=second_turn, tools=[WEATHER], max_tokens=24, temperature=0,
        stream=True,
    )  # fmt: skip
    chunks = [c for c in streamed if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == (answer.choices[0].message.content or "")


def test_streamed_tool_call_deltas_assemble_into_valid_calls(oai):
    stream = oai.chat.completions.create(
        model=MODEL, messages=ASK, tools=[WEATHER, ADD], tool_choice="required", max_tokens=200,
        temperature=0, stream=True,
    )  # fmt: skip
    calls: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta_call.index, {"name": "", "arguments": ""})
            if delta_call.function.name:
                call["name"] = delta_call.function.name
            call["arguments"] += delta_call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls
    for call in calls.values():
        jsonschema.validate(json.loads(call["arguments"]), PARAMETERS[call["name"]])


def test_greedy_top_logprobs_rank_the_chosen_token_first_in_chat_and_completions(oai):
    chat = oai.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=10, temperature=0, logprobs=True, top_logprobs=5
    )
    entries = chat.choices[0].logprobs.content
    assert len(entries) == chat.usage.completion_tokens
    for entry in entries:
        assert entry.top_logprobs[0].token == entry.token
        assert entry.logprob == entry.top_logprobs[0].logprob <= 0
        assert sum(math.exp(t.logprob) for t in entry.top_logprobs) <= 1 + 1e-6
    text = oai.completions.create(
        model=MODEL, prompt="The sky is", max_tokens=6, temperature=0, logprobs=3
    )
    logprobs = text.choices[0].logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 6
    assert "".join(logprobs.tokens) == text.choices[0].text
    for token, best in zip(logprobs.tokens, logprobs.top_logprobs, strict=True):
        assert max(best, key=best.get) == token


def test_n_choices_compute_the_prompt_once_and_a_seed_repeats_them(url, oai):
    prompt = "A short story about a lighthouse keeper who finds a message in a bottle:"
    before = httpx.get(f"{url}/v1/stats").json()["prompt_tokens"]
    request = {"model": MODEL, "prompt": prompt, "max_tokens": 12, "temperature": 1.0, "seed": 42}
    first = oai.completions.create(n=4, **request)
    after = httpx.get(f"{url}/v1/stats").json()["prompt_tokens"]
    assert len(first.choices) == 4 and [c.index for c in first.choices] == [0, 1, 2, 3]
    assert after - before == first.usage.prompt_tokens  # once, not four times
    assert first.usage.completion_tokens == sum(12 for _ in range(4))
    again = oai.completions.create(n=4, **request)
    assert [c.text for c in again.choices] == [c.text for c in first.choices]
    assert len({c.text for c in first.choices}) > 1  # each choice draws its own tokens


def test_user_is_accepted_and_models_retrieve_works(oai):
    reply = oai.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=2, user="end-user-7", temperature=0
    )
    assert reply.choices[0].message.content is not None
    model = oai.models.retrieve("gemma3-270m:q4_k_m")
    assert model.id == "gemma3-270m:q4_k_m" and model.created > 0
