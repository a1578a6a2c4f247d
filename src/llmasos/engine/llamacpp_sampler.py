"""A per-process llama.cpp sampler chain built from SamplingParams, with the process's
constraint mask and log-probability recording."""

from __future__ import annotations

import llama_cpp
import numpy as np

from llmasos.engine.base import TokenLogprobs
from llmasos.engine.llamacpp_constraint import TokenMask
from llmasos.sampling import SamplingParams


class LlamaSampler:
    """Owns one llama_sampler chain; its RNG and penalty history live as long as the process.

    Plain greedy decoding skips the chain: llama_sampler_sample copies the whole vocabulary
    (262k entries for Gemma 3) into a candidate array first, while an argmax over the logits
    picks the same token (the first maximum, like llama.cpp's greedy sampler) in a third of the
    time. A constraint masks the logits row in place before either path picks.
    """

    def __init__(
        self, params: SamplingParams, seed: int, vocab_size: int, mask: TokenMask | None = None
    ) -> None:
        self._params = params
        self._vocab_size = vocab_size
        self._mask = mask
        self._argmax = params.greedy and params.repeat_penalty == 1.0
        self._logprobs: TokenLogprobs | None = None
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(chain_params)
        for stage in _stages(params, seed, vocab_size):
            llama_cpp.llama_sampler_chain_add(self._chain, stage)

    @property
    def failure(self) -> str | None:
        return None if self._mask is None else self._mask.failure

    def sample(self, ctx: llama_cpp.llama_context_p, row: int) -> int:
        """Pick (and accept) a token from output row `row` of the context's last decode."""
        logits = None
        if self._mask is not None or self._argmax or self._params.logprobs is not None:
            pointer = llama_cpp.llama_get_logits_ith(ctx, row)
            logits = np.ctypeslib.as_array(pointer, shape=(self._vocab_size,))
        if self._mask is not None:
            self._mask.apply(logits)  # type: ignore[arg-type]
        if self._argmax:
            token = int(logits.argmax())  # type: ignore[union-attr]
        else:
            token = int(llama_cpp.llama_sampler_sample(self._chain, ctx, row))
        if self._params.logprobs is not None:
            self._logprobs = _logprobs(logits, token, self._params.logprobs)  # type: ignore[arg-type]
        if self._mask is not None:
            self._mask.accept(token)
        return token

    def take_logprobs(self) -> TokenLogprobs | None:
        logprobs, self._logprobs = self._logprobs, None
        return logprobs

    def fork(self, seed: int) -> LlamaSampler:
        """A sampler in this one's constraint state, drawing with `seed`. (The chain's penalty
        history starts empty: repeat_penalty forks see only their own tokens.)"""
        mask = None if self._mask is None else self._mask.fork()
        return LlamaSampler(self._params, seed, self._vocab_size, mask)

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


def _logprobs(logits: np.ndarray, token: int, top: int) -> TokenLogprobs:
    """log softmax over the (masked) logits: the chosen token's and the `top` best."""
    finite = logits[np.isfinite(logits)]
    peak = finite.max()
    log_total = peak + np.log(np.exp(finite - peak, dtype=np.float64).sum())
    best: tuple[tuple[int, float], ...] = ()
    if top:
        candidates = np.argpartition(-logits, top)[:top]
        ranked = candidates[np.argsort(-logits[candidates], kind="stable")]
        best = tuple(
            (int(t), float(logits[t] - log_total)) for t in ranked if np.isfinite(logits[t])
        )
    return TokenLogprobs(token, float(logits[token] - log_total), best)


def _stages(params: SamplingParams, seed: int, vocab_size: int) -> list[llama_cpp.llama_sampler_p]:
    # top_k first: the penalty stage is slow on the whole vocabulary (see llama.h).
    stages = []
    if params.greedy:
        if params.repeat_penalty != 1.0:
            stages.append(_penalties(params, vocab_size))
        stages.append(llama_cpp.llama_sampler_init_greedy())
        return stages
    if params.top_k > 0:
        stages.append(llama_cpp.llama_sampler_init_top_k(params.top_k))
    if params.repeat_penalty != 1.0:
        stages.append(_penalties(params, vocab_size))
    stages.append(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    stages.append(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    stages.append(llama_cpp.llama_sampler_init_temp(params.temperature))
    stages.append(llama_cpp.llama_sampler_init_dist(seed))
    return stages


def _penalties(params: SamplingParams, vocab_size: int) -> llama_cpp.llama_sampler_p:
    return llama_cpp.llama_sampler_init_penalties(
        vocab_size, params.repeat_last_n, params.repeat_penalty, 0.0, 0.0
    )
