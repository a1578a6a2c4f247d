"""Constraints on llama.cpp: llguidance matchers over the model's own vocabulary.

Chosen by measurement on the default model (262k-token vocabulary, 2 cores; see
bench/results/structured.json): llama.cpp's grammar sampler walks the whole vocabulary through its
grammar stacks on every token, while llguidance computes a token bitmask with a prefix tree and
a lexer, several times faster, and compiles more of JSON Schema. A TokenMask applies a matcher's
mask to one logits row (disallowed tokens get -inf) and advances the matcher with the sampled
token; it lives in the process's sampler, so preemption and swapping never disturb it.

The tokenizer llguidance needs is built once per engine from the vocabulary (about a second for
262k tokens), on the first constrained spawn.
"""

from __future__ import annotations

import ctypes
import threading

import llama_cpp
import llguidance
import numpy as np

from llmasos.constraint import JSON_LAYOUT, Constraint, ConstraintKind
from llmasos.errors import EngineError, UnprocessableError

_PIECE_BYTES = 16 * 1024


class TokenMask:
    """One process's constraint: which tokens may come next, and its progress so far."""

    def __init__(self, matcher: llguidance.LLMatcher, vocab_size: int) -> None:
        self._matcher = matcher
        self._vocab_size = vocab_size
        self._bits = np.zeros((vocab_size + 31) // 32, dtype=np.int32)
        self.failure: str | None = None

    def apply(self, logits: np.ndarray) -> None:
        """Set the logits of every token the constraint forbids now to -inf (in place)."""
        self._matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        allowed = np.unpackbits(self._bits.view(np.uint8), bitorder="little")[: self._vocab_size]
        if not allowed.any():
            self.failure = f"constraint: no token can continue the output ({self._error()})"
            return
        logits[allowed == 0] = -np.inf

    def accept(self, token: int) -> None:
        """Advance past the sampled `token`."""
        if self.failure is None and not self._matcher.consume_token(token):
            self.failure = f"constraint: the output left it ({self._error()})"

    def fork(self) -> TokenMask:
        twin = TokenMask(self._matcher.deep_copy(), self._vocab_size)
        twin.failure = self.failure
        return twin

    def _error(self) -> str:
        return self._matcher.get_error() or "the grammar allows nothing more"


class ConstraintCompiler:
    """Compiles constraints into token masks for one llama.cpp vocabulary."""

    def __init__(self, vocab: llama_cpp.llama_vocab_p, vocab_size: int) -> None:
        self._vocab = vocab
        self._vocab_size = vocab_size
        self._tokenizer: llguidance.LLTokenizer | None = None
        self._lock = threading.Lock()

    def compile(self, constraint: Constraint) -> TokenMask:
        """A fresh mask for `constraint`; UnprocessableError naming the field (json_schema,
        grammar or regex) when llguidance cannot compile it, with its reason (for a schema,
        the unsupported keyword)."""
        try:
            grammar = _grammar(constraint)
        except ValueError as error:
            raise UnprocessableError(constraint.field, f"cannot be compiled: {error}") from None
        matcher = llguidance.LLMatcher(self._llg_tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise UnprocessableError(constraint.field, f"cannot be compiled: {matcher.get_error()}")
        return TokenMask(matcher, self._vocab_size)

    def _llg_tokenizer(self) -> llguidance.LLTokenizer:
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = _llg_tokenizer(self._vocab, self._vocab_size)
            return self._tokenizer


def _llg_tokenizer(vocab: llama_cpp.llama_vocab_p, vocab_size: int) -> llguidance.LLTokenizer:
    """llguidance's view of a llama.cpp vocabulary: every token's bytes, control tokens marked
    with a leading 0xff byte (as llguidance expects), and llama.cpp's own tokenize function."""
    buffer = ctypes.create_string_buffer(_PIECE_BYTES)
    control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
    user_defined = llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
    pieces: list[bytes] = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        n = llama_cpp.llama_token_to_piece(vocab, token, buffer, _PIECE_BYTES, 0, True)
        if n < 0:
            raise EngineError(f"token {token} is longer than {_PIECE_BYTES} bytes")
        piece = buffer.raw[:n]
        attributes = llama_cpp.llama_vocab_get_attr(vocab, token)
        looks_special = piece.startswith(b"<") and piece.endswith(b">")
        if attributes & control or (attributes & user_defined and looks_special):
            piece = b"\xff" + piece
        pieces.append(piece)
    pieces += [b""] * (vocab_size - len(pieces))
    tokenize = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    return llguidance.LLTokenizer.from_llamacpp(  # type: ignore[attr-defined]
        tokens=pieces,
        vocab_ptr=vocab,
        tokenize_fptr=tokenize,
        eos_token=llama_cpp.llama_vocab_eos(vocab),
        slices=None,
    )


def _grammar(constraint: Constraint) -> str:
    if constraint.kind is ConstraintKind.JSON_SCHEMA:
        return llguidance.LLMatcher.grammar_from_json_schema(
            constraint.source, defaults=JSON_LAYOUT
        )
    if constraint.kind is ConstraintKind.REGEX:
        return llguidance.LLMatcher.grammar_from_regex(constraint.source)
    return llguidance.grammar_from("grammar", constraint.source)  # GBNF or Lark
