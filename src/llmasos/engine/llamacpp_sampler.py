"""A per-process llama.cpp sampler chain built from SamplingParams."""

from __future__ import annotations

import llama_cpp
import numpy as np

from llmasos.sampling import SamplingParams


class LlamaSampler:
    """Owns one llama_sampler chain; its RNG and penalty history live as long as the process.

    Plain greedy decoding skips the chain: llama_sampler_sample copies the whole vocabulary
    (262k entries for Gemma 3) into a candidate array first, while an argmax over the logits
    picks the same token (the first maximum, like llama.cpp's greedy sampler) in a third of the
    time.
    """

    def __init__(self, params: SamplingParams, seed: int, vocab_size: int) -> None:
        self._vocab_size = vocab_size
        self._argmax = params.greedy and params.repeat_penalty == 1.0
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(chain_params)
        for stage in _stages(params, seed, vocab_size):
            llama_cpp.llama_sampler_chain_add(self._chain, stage)

    def sample(self, ctx: llama_cpp.llama_context_p, row: int) -> int:
        """Pick (and accept) a token from output row `row` of the context's last decode."""
        if self._argmax:
            logits = llama_cpp.llama_get_logits_ith(ctx, row)
            return int(np.ctypeslib.as_array(logits, shape=(self._vocab_size,)).argmax())
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, row))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


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
