"""The engine protocol: the one surface the kernel drives an inference engine through.

An engine owns one model and one KV cache holding several sequences, each identified by a slot
number in [0, info.num_slots); each slot can hold info.context_length tokens. It does not know
about processes, priorities or policies: the kernel decides which slot holds what and which tokens
go into each step.

    load            the constructor of each implementation
    step(items)     one batched forward pass; returns a sampled token per item that asked for one
    interrupt()     from another thread: cut the step under way short (StepInterrupted)
    snapshot(slot)  the slot's KV state as bytes (the context switch's "save")
    restore(..)     bytes from snapshot() into any free slot (the context switch's "load")
    copy_prefix(..) share the first n cached tokens of one slot with another, without recompute
    truncate(..)    keep only the first n cached tokens of a slot
    release(slot)   forget everything the slot holds
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from llmasos.sampling import SamplingParams

# The K/V cache types an engine offers, with their bytes per stored value. Only q8_0 keeps a
# process's output independent of what runs beside it (see engine/llamacpp.py); f16 prefills
# long prompts faster (bench/results/prefill.json) at nearly twice the memory.
KV_BYTES_PER_VALUE = {"q8_0": 34 / 32, "f16": 2.0}
EXACT_KV_CACHE_TYPE = "q8_0"


@dataclass(frozen=True)
class EngineInfo:
    """What the kernel needs to know about a loaded engine."""

    model_name: str
    num_slots: int  # sequences the KV cache can hold at once
    context_length: int  # the most tokens (prompt + output) one slot may hold
    max_batch_tokens: int  # the most tokens one step() may carry
    vocab_size: int
    chat_template: str | None = None  # Jinja template from the model file, if it has one
    bos_token: str = ""  # text of the start token, for chat templates
    eos_token: str = ""  # text of the end token, for chat templates
    kv_cache_type: str = EXACT_KV_CACHE_TYPE


@dataclass(frozen=True)
class TokenLogprobs:
    """Log-probabilities at one step: the chosen token's, and the most likely alternatives
    (most likely first), from the distribution the token was drawn from (after the constraint's
    mask, before temperature and truncation)."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...]


class Sampler(Protocol):
    """Per-process token picker; it keeps its own state (RNG, penalty history, the constraint's
    parser) across steps, so it survives preemption and swapping unchanged."""

    def close(self) -> None: ...

    @property
    def failure(self) -> str | None:
        """Why the process's constraint could not be kept (None while it is)."""
        ...

    def take_logprobs(self) -> TokenLogprobs | None:
        """The log-probabilities of the last sampled token, if they were asked for."""
        ...

    def fork(self, seed: int) -> Sampler:
        """A copy in the same state (the constraint's progress included), drawing with `seed`."""
        ...


@dataclass(frozen=True)
class BatchItem:
    """One sequence's share of a step: tokens at positions start_pos.. of slot `slot`.

    When `sampler` is given, the logits after the last token are sampled and the token returned.
    """

    slot: int
    tokens: Sequence[int]
    start_pos: int
    sampler: Sampler | None


class StepInterrupted(Exception):
    """A step cut short by Engine.interrupt(): nothing was computed or sampled, and the KV
    cache is as it was before the step."""


class Engine(Protocol):
    """An inference engine the kernel can drive. See the module docstring."""

    info: EngineInfo

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` as a prompt (with the model's start token if it uses one)."""
        ...

    def token_bytes(self, token: int) -> bytes:
        """The raw bytes a generated token stands for (b"" for control tokens)."""
        ...

    def is_end_of_generation(self, token: int) -> bool:
        """True for tokens that end a generation (EOS, end-of-turn)."""
        ...

    def new_sampler(self, params: SamplingParams, seed: int) -> Sampler:
        """A fresh sampler for one process."""
        ...

    def step(self, items: Sequence[BatchItem]) -> list[int | None]:
        """Decode all items in one forward pass; a token for each item with a sampler, else None.

        Raises EngineError if the pass fails; the KV cache is then as it was before the call.
        """
        ...

    def interrupt(self, cut: bool = True) -> None:
        """From another thread: with cut, the step under way (or the next one) stops short and
        raises StepInterrupted; cut=False withdraws the request."""
        ...

    def sample_again(self, index: int, sampler: Sampler) -> int:
        """Another token from the logits item `index` of the last step() produced, drawn by
        `sampler` (a fork's first token). Valid until the next step()."""
        ...

    def snapshot(self, slot: int) -> bytes:
        """The KV state of `slot` as bytes, restorable bit-exact by restore()."""
        ...

    def restore(self, state: bytes, slot: int) -> None:
        """Load bytes from snapshot() into the empty slot `slot`."""
        ...

    def copy_prefix(self, src_slot: int, dst_slot: int, num_tokens: int) -> None:
        """Make the first `num_tokens` cached tokens of `src_slot` the content of the empty
        `dst_slot`. The source may keep generating."""
        ...

    def truncate(self, slot: int, num_tokens: int) -> bool:
        """Keep only the first `num_tokens` cached tokens of `slot`; False if impossible."""
        ...

    def release(self, slot: int) -> None:
        """Drop everything cached in `slot`."""
        ...

    def cached_positions(self, slot: int) -> int:
        """How many token positions `slot` holds (one past the highest position), 0 if empty."""
        ...

    def close(self) -> None:
        """Free the model and its memory."""
        ...


@dataclass(frozen=True)
class EmbedderInfo:
    """What a caller needs to know about a loaded embedding model."""

    model_name: str
    dimensions: int  # length of each vector embed() returns
    max_input_tokens: int  # the most tokens one text may have, special tokens included
    pooling: str  # how token vectors become one: "mean", "cls" or "last" (from the model)


class Embedder(Protocol):
    """An embedding model: texts in, one L2-normalised vector each out. Safe to call from
    several threads."""

    info: EmbedderInfo

    def tokenize(self, text: str) -> list[int]:
        """The tokens the model sees for `text`, special tokens included."""
        ...

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One vector per text; InvalidRequestError naming `input` for an empty or too long
        text (nothing is truncated)."""
        ...

    def close(self) -> None:
        """Free the model and its memory."""
        ...
