"""The compute devices this build of llama.cpp can use, with their memory (ggml's registry)."""

from __future__ import annotations

import ctypes
import enum
import os
from dataclasses import dataclass

from llmasos.models.placement import Device

CPU_BUDGET_SHARE = 0.5  # of physical RAM, when no budget is given
GPU_BUDGET_SHARE = 0.9  # of each GPU's memory, when no budget is given


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


def default_devices(budget_bytes: int | None = None) -> list[Device]:
    """Where models may go: every GPU when there are any, else the CPU. Each device's capacity
    is `budget_bytes`, or by default half the RAM (CPU) or 90% of the GPU's memory."""
    found = discover_devices()
    gpus = [d for d in found if d.kind is DeviceKind.GPU]
    if gpus:
        return [
            Device(
                f"gpu:{g.index}",
                budget_bytes or int(g.total_bytes * GPU_BUDGET_SHARE),
                gpu_index=g.index,
            )
            for g in gpus
        ]
    ram = next(d.total_bytes for d in found if d.kind is DeviceKind.CPU)
    return [Device("cpu", budget_bytes or int(ram * CPU_BUDGET_SHARE))]
