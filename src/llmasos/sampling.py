"""Sampling parameters of one generation, validated once at the kernel's door."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmasos.constraint import Constraint, build_constraint
from llmasos.errors import InvalidRequestError

MAX_STOP_STRINGS = 16
MAX_TOP_LOGPROBS = 20
MAX_STOP_LENGTH = 256
INT32_MAX = 2**31 - 1  # what llama.cpp's int32 parameters hold; the kernel checks tighter


@dataclass(frozen=True)
class SamplingParams:
    """How one process picks its tokens and when it stops.

    temperature 0 is greedy decoding (top_k, top_p, min_p and seed are then unused). A seed of
    None draws a fresh random seed; a fixed seed makes sampled output reproducible. A
    constraint (JSON schema, grammar or regex) masks every token that would leave it. logprobs
    None records no log-probabilities; n >= 0 records the chosen token's and the n most likely
    alternatives' at every step.
    """

    max_tokens: int = 256
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    constraint: Constraint | None = None
    logprobs: int | None = None

    @classmethod
    def build(
        cls,
        *,
        max_tokens: object = 256,
        temperature: object = 0.8,
        top_k: object = 40,
        top_p: object = 0.95,
        min_p: object = 0.05,
        repeat_penalty: object = 1.0,
        repeat_last_n: object = 64,
        seed: object = None,
        stop: object = None,
        json_schema: object = None,
        grammar: object = None,
        regex: object = None,
        logprobs: object = None,
    ) -> SamplingParams:
        """Check every field from untrusted input and return the params, or raise
        InvalidRequestError naming the first bad field and its limit."""
        return cls(
            max_tokens=_integer("max_tokens", max_tokens, minimum=1, maximum=INT32_MAX),
            temperature=_number("temperature", temperature, minimum=0.0, maximum=100.0),
            top_k=_integer("top_k", top_k, minimum=0, maximum=INT32_MAX),
            top_p=_probability("top_p", top_p),
            min_p=_number("min_p", min_p, minimum=0.0, maximum=1.0),
            repeat_penalty=_number("repeat_penalty", repeat_penalty, minimum=0.01, maximum=10.0),
            repeat_last_n=_integer("repeat_last_n", repeat_last_n, minimum=0, maximum=INT32_MAX),
            seed=None if seed is None else _integer("seed", seed, minimum=0, maximum=2**32 - 2),
            stop=_stop_strings(stop),
            constraint=build_constraint(json_schema=json_schema, grammar=grammar, regex=regex),
            logprobs=None
            if logprobs is None
            else _integer("logprobs", logprobs, minimum=0, maximum=MAX_TOP_LOGPROBS),
        )

    @property
    def greedy(self) -> bool:
        """True when the next token is always the most likely one."""
        return self.temperature == 0.0


def merge_stops(stop: object, extra: tuple[str, ...]) -> list[str] | None:
    """The caller's stop strings (validated) plus `extra` ones, e.g. those a chat format needs."""
    merged = [*_stop_strings(stop), *extra]
    return merged or None


def _integer(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(name, f"must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise InvalidRequestError(name, f"must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidRequestError(name, f"must be <= {maximum}, got {value}")
    return value


def _number(name: str, value: object, *, minimum: float, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not minimum <= value <= maximum:
        raise InvalidRequestError(name, f"must be between {minimum} and {maximum}, got {value}")
    return float(value)


def _probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        raise InvalidRequestError(name, f"must be in (0, 1], got {value}")
    return float(value)


def _stop_strings(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items: Sequence[object] = [value] if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(items, list | tuple):
        raise InvalidRequestError(
            "stop", f"must be a string or a list of strings, got {type(value).__name__}"
        )
    if len(items) > MAX_STOP_STRINGS:
        raise InvalidRequestError(
            "stop", f"at most {MAX_STOP_STRINGS} stop strings, got {len(items)}"
        )
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidRequestError("stop", "each stop string must be a non-empty string")
        if len(item) > MAX_STOP_LENGTH:
            raise InvalidRequestError(
                "stop", f"each stop string must be at most {MAX_STOP_LENGTH} characters"
            )
    return tuple(items)  # type: ignore[arg-type]
