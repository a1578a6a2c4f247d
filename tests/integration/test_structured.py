"""Constrained output and log-probabilities with the real engine and the default model.

The default model is a base model: these test mechanics (every output parses, validates,
matches; batching and preemption change nothing), not the quality of the values.
"""

from __future__ import annotations

import json
import math
import re

import jsonschema
import pytest

from llmasos import Client, FinishReason, InvalidRequestError, ProcessState
from tests.integration.conftest import PROMPTS
from tests.unit.test_kernel import wait_until


def strings(max_length: int) -> dict:
    return {"type": "string", "maxLength": max_length}


def closed(properties: dict, required: list[str]) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


SCHEMAS = {
    "nested objects": closed(
        {"person": closed({"name": strings(20), "city": strings(20)}, ["name", "city"])},
        ["person"],
    ),
    "arrays": closed(
        {"colors": {"type": "array", "items": strings(12), "minItems": 1, "maxItems": 4}},
        ["colors"],
    ),
    "enums": closed(
        {"mood": {"enum": ["happy", "sad", "angry"]}, "weather": {"enum": ["sunny", "rainy"]}},
        ["mood", "weather"],
    ),
    "bounded numbers": closed(
        {
            "age": {"type": "integer", "minimum": 18, "maximum": 65},
            "rating": {"type": "integer", "minimum": -5, "maximum": 5},
        },
        ["age", "rating"],
    ),
    "required and optional fields": closed(
        {
            "title": strings(30),
            "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
            "tags": {"type": "array", "items": strings(10), "maxItems": 3},
        },
        ["title", "year"],
    ),
}


@pytest.fixture(scope="module")
def client(model_path):
    with Client("priority", model=str(model_path), num_slots=4, context_length=1024) as c:
        yield c


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_json_schema_output_parses_and_validates(client, name):
    value = client.generate_json(f"A record in JSON ({name}):\n", SCHEMAS[name], max_tokens=150)
    jsonschema.validate(value, SCHEMAS[name])


def test_seeded_sampling_under_a_schema_also_validates(client):
    for seed in (1, 2, 3):
        value = client.generate_json(
            "A record:\n", SCHEMAS["enums"], max_tokens=60, temperature=1.0, seed=seed
        )
        jsonschema.validate(value, SCHEMAS["enums"])


def test_hot_sampling_cannot_fill_json_with_whitespace(client):
    """Between two JSON tokens the output may hold one space, or one line break and at most
    20 spaces of indentation, no more (strings, left out here, hold their own spaces)."""
    schema = SCHEMAS["required and optional fields"]
    for seed in range(6):
        process = client.spawn(
            "A record:\n", json_schema=schema, max_tokens=150, temperature=1.5, seed=seed
        )
        text = process.wait().text
        outside_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
        for run in re.findall(r"\s+", outside_strings):
            assert re.fullmatch(r" |\n {0,20}", run), (run, text)


def test_properties_come_out_in_the_schema_order(client):
    schema = closed(
        {"zebra": strings(8), "apple": strings(8), "mango": {"enum": ["a", "b"]}},
        ["zebra", "apple", "mango"],
    )
    value = client.generate_json("Three fields:\n", schema, max_tokens=60)
    assert list(value) == ["zebra", "apple", "mango"]


def test_a_constrained_process_preempted_and_swapped_mid_output_finishes_exactly(model_path):
    schema = SCHEMAS["required and optional fields"]
    prompt = "A book record in JSON:\n"
    with Client("priority", model=str(model_path), num_slots=1, context_length=1024) as c:
        alone = c.spawn(prompt, json_schema=schema, max_tokens=150, temperature=0).wait()
        low = c.spawn(prompt, json_schema=schema, max_tokens=150, temperature=0)
        process = c.kernel.get(low.pid)
        wait_until(lambda: process.num_output_tokens >= 5)  # inside the JSON value
        urgent = c.spawn(PROMPTS[0], priority=10, max_tokens=8, temperature=0).wait()
        result = low.wait()
        assert urgent.finish_reason is FinishReason.LENGTH
        assert result.preemptions >= 1 and c.kernel.pager.stats.swap_outs >= 1
    assert result.finish_reason is FinishReason.STOP
    assert result.token_ids == alone.token_ids  # the swap changed nothing, parser state included
    jsonschema.validate(json.loads(result.text), schema)


def test_constrained_and_free_processes_share_a_batch_and_the_free_ones_are_unchanged(
    model_path, solo
):
    with Client(model=str(model_path), num_slots=6, context_length=1024) as c:
        with c.kernel.paused():
            constrained = [
                c.spawn(
                    f"Record {i}:\n", json_schema=SCHEMAS["enums"], max_tokens=60, temperature=0
                )
                for i in range(3)
            ]
            free = [c.spawn(p, max_tokens=24, temperature=0) for p in PROMPTS[:3]]
        free_results = [h.wait().token_ids for h in free]
        assert max(len(r.batch) for r in c.kernel.trace) >= 5  # they ran together
        for handle in constrained:
            jsonschema.validate(json.loads(handle.wait().text), SCHEMAS["enums"])
    assert free_results == [solo(p, 24) for p in PROMPTS[:3]]


def test_regex_and_grammar_constraints_hold(client):
    pattern = r"[0-9]{3}-[a-z]{2,5}"
    text = client.generate_text("A code: ", regex=pattern, max_tokens=20, temperature=0)
    assert re.fullmatch(pattern, text)
    answer = client.generate_text(
        "Is water wet? ", grammar='root ::= "yes" | "no"', max_tokens=5, temperature=0
    )
    assert answer in ("yes", "no")
    lark = 'start: "(" NUMBER ")"\nNUMBER: /[0-9]{1,4}/'
    number = client.generate_text("n=", grammar=lark, max_tokens=10, temperature=0)
    assert re.fullmatch(r"\([0-9]{1,4}\)", number)


@pytest.mark.parametrize(
    ("constraint", "field", "fragment"),
    [
        ({"json_schema": {"type": "object", "if": {}, "then": {}}}, "json_schema", '"if"'),
        ({"json_schema": {"type": "string", "pattern": "(a"}}, "json_schema", "unclosed group"),
        ({"grammar": "root ::= (("}, "grammar", "Expected ')'"),
        ({"regex": "(unclosed"}, "regex", "unclosed group"),
        ({"json_schema": [1, 2]}, "json_schema", "must be a JSON object"),
        ({"regex": "a", "grammar": 'root ::= "a"'}, "regex", "at most one"),
    ],
)
def test_a_constraint_that_cannot_compile_is_refused_naming_the_field_and_reason(
    client, constraint, field, fragment
):
    with pytest.raises(InvalidRequestError) as info:
        client.spawn("x", **constraint)
    assert info.value.field == field
    assert fragment in str(info.value)
    assert client.generate_text("still up", max_tokens=2, temperature=0)


def test_greedy_log_probabilities_rank_the_chosen_token_first(client):
    result = client.spawn(PROMPTS[2], max_tokens=12, temperature=0, logprobs=5).wait()
    assert result.logprobs is not None and len(result.logprobs) == 12
    for token, step in zip(result.token_ids, result.logprobs, strict=True):
        assert step.chosen.token == token
        assert step.alternatives[0].token == token  # greedy: the top alternative
        assert step.chosen.logprob == step.alternatives[0].logprob <= 0
        assert all(a.logprob <= 0 for a in step.alternatives)
        assert sum(math.exp(a.logprob) for a in step.alternatives) <= 1 + 1e-6
        ranked = [a.logprob for a in step.alternatives]
        assert ranked == sorted(ranked, reverse=True)


def test_log_probabilities_stream_with_their_tokens_and_respect_the_mask(client):
    handle = client.spawn(
        "Weather:", json_schema=SCHEMAS["enums"], max_tokens=60, temperature=0, logprobs=3
    )
    result = handle.wait()
    assert result.finish_reason is FinishReason.STOP and handle.state is ProcessState.TERMINATED
    pieces = b"".join(step.chosen.piece for step in result.logprobs)
    assert pieces.decode() == result.text
    # masked tokens have probability 0: every alternative shown is one the schema allowed
    assert all(math.isfinite(a.logprob) for step in result.logprobs for a in step.alternatives)
