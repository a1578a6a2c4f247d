"""Output constraints: a JSON schema, a grammar or a regular expression that a process's output
must match. This module only describes and bounds them; an engine compiles them into a token
mask (see engine/llamacpp_constraint.py), and a constraint the engine cannot compile is refused
at spawn with UnprocessableError naming the field.

    json_schema   a JSON Schema object (the output is JSON that validates against it)
    grammar       a GBNF grammar (llama.cpp's format) or a Lark grammar (llguidance's)
    regex         a regular expression the whole output matches
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from llmasos.errors import InvalidRequestError

MAX_CONSTRAINT_BYTES = 64 * 1024

JSON_LAYOUT = {"whitespace_pattern": r"( |\n {0,20})?"}
"""Where JSON output may put whitespace: between two tokens nothing, one space, or a line break
and up to 20 spaces of indentation (what llama.cpp's JSON grammars allow), so sampling cannot
wander into blank lines or runs of spaces. A schema's own "x-guidance" options (llguidance's)
replace this."""


def with_json_layout(schema: dict) -> dict:
    """`schema` with JSON_LAYOUT as its llguidance options, unless it sets its own."""
    return schema if "x-guidance" in schema else {**schema, "x-guidance": JSON_LAYOUT}


class ConstraintKind(enum.Enum):
    JSON_SCHEMA = "json_schema"
    GRAMMAR = "grammar"
    REGEX = "regex"


@dataclass(frozen=True)
class Constraint:
    kind: ConstraintKind
    source: str  # the schema as JSON text, the grammar text, or the regex

    @property
    def field(self) -> str:
        """The request field this constraint came from (for error messages)."""
        return self.kind.value

    @classmethod
    def any_json_object(cls) -> Constraint:
        """Output that is some JSON object (OpenAI's response_format json_object)."""
        return cls(ConstraintKind.JSON_SCHEMA, json.dumps({"type": "object"}))


def build_constraint(
    *, json_schema: object = None, grammar: object = None, regex: object = None
) -> Constraint | None:
    """The one constraint given (None if none), checked and bounded; InvalidRequestError
    naming the field otherwise."""
    given = {
        name: value
        for name, value in (("json_schema", json_schema), ("grammar", grammar), ("regex", regex))
        if value is not None
    }
    if not given:
        return None
    if len(given) > 1:
        raise InvalidRequestError(
            sorted(given)[1],
            f"give at most one of json_schema, grammar and regex, got {sorted(given)}",
        )
    ((name, value),) = given.items()
    if name == "json_schema":
        source = _schema_text(value)
    elif not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(name, "must be a non-empty string")
    else:
        source = value
    if len(source.encode()) > MAX_CONSTRAINT_BYTES:
        raise InvalidRequestError(name, f"must be at most {MAX_CONSTRAINT_BYTES} bytes")
    return Constraint(ConstraintKind(name), source)


def _schema_text(schema: object) -> str:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as error:
            raise InvalidRequestError("json_schema", f"is not valid JSON ({error})") from None
    if not isinstance(schema, dict):
        raise InvalidRequestError("json_schema", "must be a JSON object (a JSON Schema)")
    try:
        return json.dumps(schema)  # key order kept: properties come out in the schema's order
    except (TypeError, ValueError) as error:
        raise InvalidRequestError("json_schema", f"is not serialisable as JSON ({error})") from None
