"""The compute devices this build of llama.cpp can use, with their memory (ggml's registry)."""

from __future__ import annotations

import ctypes
import enum
import os
from dataclasses import dataclass


class DeviceKind(enum.IntEnum):  # enum ggml_backend_dev_type
    CPU = 0
    GPU = 1
    IGPU = 2
    ACCEL = 3


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    kind: DeviceKind
    total_bytes: int
    index: int  # among devices of its kind, as llama.cpp's main_gpu counts them


def discover_devices() -> list[DeviceInfo]:
    """Every device ggml reports; the CPU's memory is the machine's physical RAM."""
    from llama_cpp._ggml import libggml

    libggml.ggml_backend_dev_count.restype = ctypes.c_size_t
    libggml.ggml_backend_dev_get.restype = ctypes.c_void_p
    libggml.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    libggml.ggml_backend_dev_type.restype = ctypes.c_int
    libggml.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    libggml.ggml_backend_dev_name.restype = ctypes.c_char_p
    libggml.ggml_backend_dev_name.argtypes = [ctypes.c_void_p]
    libggml.ggml_backend_dev_memory.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(ctypes.c_size_t),
        ctypes.POINTER(ctypes.c_size_t),
    ]
    devices, per_kind = [], {kind: 0 for kind in DeviceKind}
    for i in range(libggml.ggml_backend_dev_count()):
        handle = libggml.ggml_backend_dev_get(i)
        kind = DeviceKind(libggml.ggml_backend_dev_type(handle))
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        libggml.ggml_backend_dev_memory(handle, ctypes.byref(free), ctypes.byref(total))
        if kind is DeviceKind.CPU:
            total = ctypes.c_size_t(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
        name = (libggml.ggml_backend_dev_name(handle) or b"?").decode()
        devices.append(DeviceInfo(name, kind, total.value, per_kind[kind]))
        per_kind[kind] += 1
    return devices
