"""Placement of loaded models on devices under a memory budget.

A device is a place a model's weights and KV cache can live (the CPU's RAM, or one GPU's memory)
with a capacity in bytes. Three classic fit policies choose among the devices that have room:

    first-fit   the first device, in the order given, with room
    best-fit    the device left with the least room afterwards (packs devices tightly)
    worst-fit   the device left with the most room afterwards (spreads load)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from llmasos.errors import InvalidRequestError


class FitPolicy(enum.Enum):
    FIRST_FIT = "first-fit"
    BEST_FIT = "best-fit"
    WORST_FIT = "worst-fit"

    @classmethod
    def parse(cls, value: object) -> FitPolicy:
        try:
            return cls(value)
        except ValueError as error:
            choices = [p.value for p in cls]
            raise InvalidRequestError(
                "placement", f"must be one of {choices}, got {value!r}"
            ) from error


@dataclass(frozen=True)
class Device:
    name: str  # "cpu", "gpu:0", ...
    capacity_bytes: int
    gpu_index: int | None = None  # which GPU, for the engine; None: the CPU


def place(
    size_bytes: int, devices: Sequence[Device], used_bytes: Mapping[str, int], policy: FitPolicy
) -> Device | None:
    """The device to put `size_bytes` on, or None when no device has room."""
    fits = [d for d in devices if d.capacity_bytes - used_bytes.get(d.name, 0) >= size_bytes]
    if not fits:
        return None
    if policy is FitPolicy.FIRST_FIT:
        return fits[0]

    def room_after(device: Device) -> int:
        return device.capacity_bytes - used_bytes.get(device.name, 0) - size_bytes

    if policy is FitPolicy.BEST_FIT:
        return min(fits, key=room_after)
    return max(fits, key=room_after)
