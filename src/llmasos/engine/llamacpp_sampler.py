"""A per-process llama.cpp sampler chain built from SamplingParams."""

from __future__ import annotations

import llama_cpp

from llmasos.sampling import SamplingParams


class LlamaSampler:
    """Owns one llama_sampler chain; its RNG and penalty history live as long as the process."""

    def __init__(self, params: SamplingParams, seed: int, vocab_size: int) -> None:
        chain_params = llama_cpp.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._chain = llama_cpp.llama_sampler_chain_init(chain_params)
        for stage in _stages(params, seed, vocab_size):
            llama_cpp.llama_sampler_chain_add(self._chain, stage)

    def sample(self, ctx: llama_cpp.llama_context_p, row: int) -> int:
        """Pick (and accept) a token from output row `row` of the context's last decode."""
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
