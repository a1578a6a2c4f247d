"""The embedded engine: llama.cpp through llama-cpp-python's low-level API.

One llama context holds `num_slots` sequences (llama.cpp seq ids), each in its own KV stream of
`context_length` cells. Each step() is one llama_decode over a batch that mixes prefill chunks and
single decode tokens of many sequences; each process samples with its own C sampler chain.

Exactness. The kernel promises that a process's greedy output does not depend on what else runs
beside it, how its prompt was chunked, or whether it was swapped out and back. llama.cpp's CPU
backend keeps that promise only on some paths, so the context is set up to stay on them (each
choice was measured: without it, batched greedy output drifts from solo output within 20 tokens):
  - one KV stream per sequence (kv_unified off): in a shared cache, cells freed by one sequence
    are reused by the next token of another, out of position order, which changes the attention
    sums;
  - q8_0 K and V with flash attention: f16/f32 caches select a tiled kernel for ubatches of 64+
    tokens and a split-KV kernel for single-token decodes, each summing in a different order;
  - no weight repacking (use_extra_bufts off) and no tiled K-quant matmul (GGML_CPU_TILED_MM=0):
    both switch kernels with the number of tokens in the batch.
The cost, measured on 2 cores (bench/results/prefill.json, throughput.json): f16 K/V prefills
1.2x (512 tokens) to 1.4x (2048 tokens) faster; decoding speed is unchanged, and single-sequence
and batched decoding match llama-batched-bench within this machine's run-to-run spread. Turning
GGML_CPU_TILED_MM back on gave this engine nothing measurable. kv_cache_type="f16" is offered
for long unique prompts where prefill speed matters more than exactness; q8_0 stays the default.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import llama_cpp
import numpy as np

from llmasos.engine.base import BatchItem, EngineInfo, Sampler, StepInterrupted
from llmasos.engine.llamacpp_constraint import ConstraintCompiler
from llmasos.engine.llamacpp_cut import StepCutter, cut_on_purpose, decoding, undo_step
from llmasos.engine.llamacpp_lora import apply_lora, free_lora
from llmasos.engine.llamacpp_sampler import LlamaSampler
from llmasos.errors import EngineError
from llmasos.sampling import SamplingParams

logger = logging.getLogger(__name__)

_GGML_LOG_LEVEL_WARN, _GGML_LOG_LEVEL_ERROR = 3, 4  # debug, info and progress dots are dropped
_GGML_KV_TYPES = {"q8_0": 8, "f16": 1}  # KV_BYTES_PER_VALUE's names -> ggml types

# Read once by ggml at the first matmul, so it must be set before any model runs (see above).
os.environ["GGML_CPU_TILED_MM"] = "0"


def _forward_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    if level == _GGML_LOG_LEVEL_ERROR and not cut_on_purpose():
        logger.error("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())
    elif level == _GGML_LOG_LEVEL_WARN:
        logger.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())


# llama.cpp keeps the raw pointer: the callback object must live as long as the process does.
_LOG_CALLBACK = llama_cpp.llama_log_callback(_forward_log)
llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()


@dataclass
class StepTimings:
    """Where step() spends its time, summed since the engine started (for profiling)."""

    steps: int = 0
    fill_s: float = 0.0  # laying the batch out in llama_batch's buffers
    decode_s: float = 0.0  # llama_decode: the forward pass and the logits
    sample_s: float = 0.0  # picking tokens from the logits

    def add(self, fill_s: float, decode_s: float, sample_s: float) -> None:
        self.steps += 1
        self.fill_s += fill_s
        self.decode_s += decode_s
        self.sample_s += sample_s


class _Batch:
    """A llama_batch over NumPy buffers: filling it costs no per-token ctypes calls."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.n_seq_id = np.ones(capacity, dtype=np.int32)
        self.seq_id = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        int32_p = ctypes.POINTER(ctypes.c_int32)
        base = self.seq_id.ctypes.data
        self._seq_id_ptrs = (int32_p * capacity)(
            *(ctypes.cast(base + 4 * i, int32_p) for i in range(capacity))
        )
        self.struct = llama_cpp.llama_batch(
            n_tokens=0,
            token=self.token.ctypes.data_as(int32_p),
            embd=None,
            pos=self.pos.ctypes.data_as(int32_p),
            n_seq_id=self.n_seq_id.ctypes.data_as(int32_p),
            seq_id=self._seq_id_ptrs,
            logits=self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
        )

    def fill(self, items: Sequence[BatchItem]) -> list[int]:
        """Lay the items out one after another; return each item's output row (-1: no output)."""
        offset = 0
        rows: list[int] = []
        self.logits[:] = 0
        for item in items:
            n = len(item.tokens)
            end = offset + n
            if end > self.capacity:
                raise EngineError(f"batch: {end} tokens exceed max_batch_tokens {self.capacity}")
            self.token[offset:end] = item.tokens
            self.pos[offset:end] = np.arange(item.start_pos, item.start_pos + n, dtype=np.int32)
            self.seq_id[offset:end] = item.slot
            if item.sampler is not None:
                self.logits[end - 1] = 1
                rows.append(end - 1)
            else:
                rows.append(-1)
            offset = end
        self.struct.n_tokens = offset
        return rows


def tokenize(vocab: object, text: str) -> list[int]:
    """`text`'s tokens in `vocab`, with the special tokens the model adds and parsing special
    tokens written in the text."""
    data = text.encode("utf-8")
    size = len(data) + 8
    while True:
        out = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), out, size, True, True)
        if n >= 0:
            return list(out[:n])
        size = -n


def load_model(model_path: str | Path, gpu_index: int | None) -> llama_cpp.llama_model_p:
    """The GGUF at `model_path`, loaded on the CPU or on GPU `gpu_index`; EngineError naming
    the file when it is missing or llama.cpp refuses it."""
    path = Path(model_path)
    if not path.is_file():
        raise EngineError(f"model: no GGUF file at {path}")
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params(gpu_index))
    if not model:
        raise EngineError(f"model: llama.cpp could not load {path} (not a valid GGUF?)")
    return model


def model_params(gpu_index: int | None = None) -> llama_cpp.llama_model_params:
    """Model loading parameters: no weight repacking (see the module docstring); with a GPU
    index, every layer on that GPU."""
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False
    if gpu_index is None:
        params.n_gpu_layers = 0
    else:
        params.n_gpu_layers = -1
        params.split_mode = llama_cpp.LLAMA_SPLIT_MODE_NONE
        params.main_gpu = gpu_index
    return params


def context_params(
    num_slots: int,
    context_length: int,
    max_batch_tokens: int,
    n_threads: int | None,
    kv_cache_type: str = "q8_0",
) -> llama_cpp.llama_context_params:
    """The context the engine runs on: one KV stream per slot, q8_0 KV, flash attention."""
    threads = n_threads or os.cpu_count() or 1
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = (num_slots + 1) * context_length
    params.n_batch = max_batch_tokens
    params.n_ubatch = max_batch_tokens
    params.n_seq_max = num_slots + 1  # one more: the engine's scratch sequence
    params.n_threads = threads
    params.n_threads_batch = threads
    params.kv_unified = False
    params.swa_full = True
    params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
    params.type_k = params.type_v = _GGML_KV_TYPES[kv_cache_type]
    params.no_perf = True
    return params


class LlamaCppEngine:
    """Implements engine.base.Engine on one llama.cpp context."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_name: str,
        num_slots: int = 16,
        context_length: int = 4096,
        max_batch_tokens: int = 512,
        n_threads: int | None = None,
        gpu_index: int | None = None,
        kv_cache_type: str = "q8_0",
        adapter_path: str | Path | None = None,
        adapter_scale: float = 1.0,
    ) -> None:
        """On the CPU, or with gpu_index on that GPU (where llama.cpp's GPU kernels apply and
        the exactness guarantees of the module docstring are not claimed). kv_cache_type "f16"
        prefills faster and gives up exact batching (see the module docstring). With
        adapter_path, the LoRA adapter there is applied to every step, at adapter_scale."""
        if kv_cache_type not in _GGML_KV_TYPES:
            raise EngineError(f"kv_cache_type: must be one of {sorted(_GGML_KV_TYPES)}")
        self._model = load_model(model_path, gpu_index)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        params = context_params(
            num_slots, context_length, max_batch_tokens, n_threads, kv_cache_type
        )
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise EngineError(
                f"llama.cpp could not create a context of {num_slots} x {context_length} KV cells"
            )
        self._adapter = None
        if adapter_path is not None:
            self._apply_adapter(Path(adapter_path), adapter_scale)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._cutter = StepCutter.install(self._ctx, self._model, gpu_index)
        cells_per_slot = int(llama_cpp.llama_n_ctx_seq(self._ctx))  # rounded up to 256 by llama.cpp
        trained = int(llama_cpp.llama_model_n_ctx_train(self._model))
        self.info = EngineInfo(
            model_name=model_name,
            num_slots=num_slots,
            context_length=min(cells_per_slot, trained),
            max_batch_tokens=max_batch_tokens,
            vocab_size=int(llama_cpp.llama_vocab_n_tokens(self._vocab)),
            chat_template=self._metadata("tokenizer.chat_template"),
            bos_token=self._token_text(llama_cpp.llama_vocab_bos(self._vocab)),
            eos_token=self._token_text(llama_cpp.llama_vocab_eos(self._vocab)),
            kv_cache_type=kv_cache_type,
        )
        self._batch = _Batch(max_batch_tokens)
        self._constraints = ConstraintCompiler(self._vocab, self.info.vocab_size)
        self._rows: dict[int, int] = {}  # item index of the last step -> its logits row
        self._piece_cache: dict[int, bytes] = {}
        self._copies_pending = False
        self._scratch_token = int(llama_cpp.llama_vocab_bos(self._vocab))
        self._closed = False
        self.timings = StepTimings()

    def _apply_adapter(self, path: Path, scale: float) -> None:
        """Apply the LoRA adapter at `path`; on failure free the context and the model."""
        try:
            self._adapter = apply_lora(self._model, self._ctx, path, scale)
        except BaseException:
            llama_cpp.llama_free(self._ctx)
            llama_cpp.llama_model_free(self._model)
            raise

    # -- text -----------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return tokenize(self._vocab, text)

    def token_bytes(self, token: int) -> bytes:
        piece = self._piece_cache.get(token)
        if piece is None:
            size = 32
            while True:
                buf = ctypes.create_string_buffer(size)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
                if n >= 0:
                    piece = buf.raw[:n]
                    break
                size = -n
            self._piece_cache[token] = piece
        return piece

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def _metadata(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None when the model lacks the key."""
        size = 1 << 18
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, size)
        return None if n < 0 else buf.value.decode("utf-8", "replace")

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return (llama_cpp.llama_vocab_get_text(self._vocab, token) or b"").decode(
            "utf-8", "replace"
        )

    # -- compute ----------------------------------------------------------------------------

    def new_sampler(self, params: SamplingParams, seed: int) -> LlamaSampler:
        """A sampler for one process; its constraint, if any, compiled for this vocabulary
        (InvalidRequestError naming the field when it cannot be)."""
        mask = None if params.constraint is None else self._constraints.compile(params.constraint)
        return LlamaSampler(params, seed, self.info.vocab_size, mask)

    def step(self, items: Sequence[BatchItem]) -> list[int | None]:
        # With one KV stream per slot, llama.cpp puts sequences in one ubatch only while their
        # slots ascend by one; any other order costs a forward pass per break.
        started = time.perf_counter()
        order = sorted(range(len(items)), key=lambda i: items[i].slot)
        ordered = [items[i] for i in order]
        rows = self._batch.fill(ordered)
        filled = time.perf_counter()
        with decoding(self._cutter):
            status = llama_cpp.llama_decode(self._ctx, self._batch.struct)
        decoded = time.perf_counter()
        if status != 0:
            undo_step(self._memory, ordered)
            if status == 2:
                self._copies_pending = False  # done at the start of the decode
                raise StepInterrupted()
            raise EngineError(f"llama_decode failed with status {status}")
        self._copies_pending = False
        tokens: list[int | None] = [None] * len(items)
        self._rows = dict(zip(order, rows, strict=True))
        for i, item, row in zip(order, ordered, rows, strict=True):
            if isinstance(item.sampler, LlamaSampler):
                tokens[i] = item.sampler.sample(self._ctx, row)
        self.timings.add(filled - started, decoded - filled, time.perf_counter() - decoded)
        return tokens

    def interrupt(self, cut: bool = True) -> None:
        if self._cutter is not None:
            self._cutter.cut(cut)

    def sample_again(self, index: int, sampler: Sampler) -> int:
        row = self._rows.get(index, -1)
        if row < 0 or not isinstance(sampler, LlamaSampler):
            raise EngineError(f"item {index} of the last step has no logits to sample")
        return sampler.sample(self._ctx, row)

    # -- KV state ---------------------------------------------------------------------------

    def snapshot(self, slot: int) -> bytes:
        self._apply_pending_copies()
        size = llama_cpp.llama_state_seq_get_size(self._ctx, slot)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(self._ctx, buf, size, slot)
        if written != size:
            raise EngineError(f"snapshot of slot {slot}: wrote {written} of {size} bytes")
        return bytes(buf)

    def restore(self, state: bytes, slot: int) -> None:
        self._apply_pending_copies()
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_seq_set_data(self._ctx, buf, len(state), slot) == 0:
            raise EngineError(f"restore into slot {slot} failed (KV cache full or state invalid)")

    def copy_prefix(self, src_slot: int, dst_slot: int, num_tokens: int) -> None:
        # Between KV streams llama.cpp copies whole streams, and only at the next decode.
        llama_cpp.llama_memory_seq_cp(self._memory, src_slot, dst_slot, -1, -1)
        self._copies_pending = True
        if not self.truncate(dst_slot, num_tokens):
            raise EngineError(f"could not trim slot {dst_slot} to {num_tokens} tokens")

    def truncate(self, slot: int, num_tokens: int) -> bool:
        return bool(llama_cpp.llama_memory_seq_rm(self._memory, slot, num_tokens, -1))

    def _apply_pending_copies(self) -> None:
        """Run the copies copy_prefix queued, before anything reads or overwrites KV data
        directly: a one-token decode on the engine's scratch sequence triggers them."""
        if not self._copies_pending:
            return
        scratch = self.info.num_slots
        self._batch.fill([BatchItem(scratch, [self._scratch_token], 0, None)])
        status = llama_cpp.llama_decode(self._ctx, self._batch.struct)
        llama_cpp.llama_memory_seq_rm(self._memory, scratch, -1, -1)
        if status != 0:
            raise EngineError(f"llama_decode (applying KV copies) failed with status {status}")
        self._copies_pending = False

    def release(self, slot: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)

    def cached_positions(self, slot: int) -> int:
        return int(llama_cpp.llama_memory_seq_pos_max(self._memory, slot)) + 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        llama_cpp.llama_free(self._ctx)
        free_lora(self._adapter)
        llama_cpp.llama_model_free(self._model)
