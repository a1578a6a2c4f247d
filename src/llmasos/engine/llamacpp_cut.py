"""Cutting a llama.cpp decode short from another thread (Engine.interrupt).

llama.cpp's CPU backend calls an abort callback after every graph node, from its compute thread,
and a decode it aborts returns 2 after undoing its last ubatch (the engine undoes the rest). A
Python callback would take the GIL at every node, so the callback is libc's strlen over a 2-byte
flag (b"\\0\\0": go on; b"\\1\\0": stop): it answers 0 or 1 in the return register, where the
caller reads its bool (x86-64 and arm64 alike), and costs nothing measurable.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import llama_cpp

from llmasos.engine.base import BatchItem
from llmasos.errors import EngineError

try:
    _STRLEN: int | None = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
except (OSError, AttributeError, TypeError):  # no C library to find: steps are not cut short
    _STRLEN = None


_current = threading.local()  # the cutter of the decode this thread runs, if any


class StepCutter:
    """The flag and callback of one context; they live as long as it (llama.cpp keeps both
    pointers)."""

    def __init__(self, ctx: Any) -> None:
        self._flag = ctypes.create_string_buffer(2)
        self._callback = llama_cpp.ggml_abort_callback(_STRLEN)
        flag = ctypes.cast(self._flag, ctypes.c_void_p)
        llama_cpp.llama_set_abort_callback(ctx, self._callback, flag)

    @classmethod
    def install(cls, ctx: Any, model: Any, gpu_index: int | None) -> StepCutter | None:
        """A cutter for `ctx`, or None where cutting is not offered: on a GPU, whose kernels
        do not check the callback, and for a recurrent or hybrid model, whose state a cut
        could leave half-written."""
        hybrid = getattr(llama_cpp, "llama_model_is_hybrid", lambda _model: False)
        if _STRLEN is None or gpu_index is not None:
            return None
        if llama_cpp.llama_model_is_recurrent(model) or hybrid(model):
            return None
        return cls(ctx)

    def cut(self, on: bool) -> None:
        """Ask the decode under way (or the next) to stop (on), or withdraw the request."""
        ctypes.memset(self._flag, 1 if on else 0, 1)

    def is_set(self) -> bool:
        return self._flag.raw[0] == 1


@contextlib.contextmanager
def decoding(cutter: StepCutter | None) -> Iterator[None]:
    """Mark this thread's decode, so that llama.cpp's complaints about a cut are known as such."""
    _current.cutter = cutter
    try:
        yield
    finally:
        _current.cutter = None


def cut_on_purpose() -> bool:
    """Whether this thread's decode under way was asked to stop (its errors are expected)."""
    cutter = getattr(_current, "cutter", None)
    return cutter is not None and cutter.is_set()


def undo_step(memory: Any, items: Sequence[BatchItem]) -> None:
    """After a failed or cut decode, which undid only its last ubatch: every item's positions
    from its start on leave the KV cache, as before the step."""
    for item in items:
        if not llama_cpp.llama_memory_seq_rm(memory, item.slot, item.start_pos, -1):
            raise EngineError(f"could not undo slot {item.slot} from {item.start_pos}")
