"""The bounds a spawn is checked against before anything reaches the engine's C code.

SamplingParams.build checks what holds for every engine (types, ranges, int32); these checks add
what depends on the engine the kernel drives: its vocabulary and its context length. A value
past a bound is refused with InvalidRequestError naming the field and the limit, never passed
on (llama.cpp would allocate repeat_last_n tokens of history, or wrap a huge value through
ctypes).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from llmasos.engine.base import EngineInfo
from llmasos.errors import ContextLengthError, InvalidRequestError, UnprocessableError
from llmasos.sampling import SamplingParams

MAX_PRIORITY = 1000
MAX_FORKS = 32
SEED_MAX = 2**32 - 2


def check_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidRequestError("priority", f"must be an integer, got {type(priority).__name__}")
    if abs(priority) > MAX_PRIORITY:
        raise InvalidRequestError(
            "priority", f"must be between {-MAX_PRIORITY} and {MAX_PRIORITY}, got {priority}"
        )
    return priority


def check_prompt(prompt: object) -> str:
    if not isinstance(prompt, str):
        raise InvalidRequestError("prompt", f"must be a string, got {type(prompt).__name__}")
    if not prompt:
        raise InvalidRequestError("prompt", "must not be empty")
    return prompt


def check_sampling(params: SamplingParams, info: EngineInfo) -> None:
    """Refuse sampling values beyond what this engine can hold."""
    if params.top_k > info.vocab_size:
        raise UnprocessableError(
            "top_k", f"must be <= the vocabulary of {info.vocab_size} tokens, got {params.top_k}"
        )
    if params.repeat_last_n > info.context_length:
        raise UnprocessableError(
            "repeat_last_n",
            f"must be <= the context length of {info.context_length} tokens, "
            f"got {params.repeat_last_n}",
        )


def check_fits(num_prompt_tokens: int, params: SamplingParams, info: EngineInfo) -> None:
    if num_prompt_tokens + params.max_tokens > info.context_length:
        raise ContextLengthError(num_prompt_tokens, params.max_tokens, info.context_length)


def check_forks(n: object, seeds: Sequence[object] | None) -> list[int]:
    """The seeds of `n` forks: those given (one each), or fresh random ones."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FORKS:
        raise InvalidRequestError("n", f"must be an integer from 1 to {MAX_FORKS}, got {n!r}")
    if seeds is None:
        return [random.randrange(SEED_MAX + 1) for _ in range(n)]
    if len(seeds) != n:
        raise InvalidRequestError("seeds", f"must give one seed per fork ({n}), got {len(seeds)}")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
            raise InvalidRequestError("seeds", f"each must be an integer from 0 to {SEED_MAX}")
    return list(seeds)  # type: ignore[arg-type]
