"""KV memory accounting: which engine slots are free.

A process is resident when it holds a slot. Each slot has its own KV stream sized for the longest
allowed process (prompt plus max_tokens never exceeds the context length), so a resident process
can never run out of KV space half way. The memory manager keeps the books and answers "is there
room?"; choosing whom to swap out is the kernel's job.

Slots are handed out lowest first, and `hole()` tells the kernel when a resident process sits above
a free slot: llama.cpp batches sequences in one forward pass only while their slots are
consecutive, so the kernel moves such a process down.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryUsage:
    num_slots: int
    num_free_slots: int

    @property
    def num_used_slots(self) -> int:
        return self.num_slots - self.num_free_slots


class MemoryManager:
    """Books for engine slots. Does not touch the engine."""

    def __init__(self, num_slots: int) -> None:
        self.num_slots = num_slots
        self._free_slots = list(range(num_slots))  # a min-heap
        self._used_slots: set[int] = set()

    def can_allocate(self) -> bool:
        return bool(self._free_slots)

    def allocate(self) -> int | None:
        """The lowest free slot, or None when every slot is taken."""
        if not self._free_slots:
            return None
        slot = heapq.heappop(self._free_slots)
        self._used_slots.add(slot)
        return slot

    def free(self, slot: int) -> None:
        self._used_slots.remove(slot)
        heapq.heappush(self._free_slots, slot)

    def hole(self) -> tuple[int, int] | None:
        """(highest used slot, lowest free slot) when the first lies above the second."""
        if not self._free_slots or not self._used_slots:
            return None
        highest, lowest = max(self._used_slots), self._free_slots[0]
        return (highest, lowest) if highest > lowest else None

    def usage(self) -> MemoryUsage:
        return MemoryUsage(num_slots=self.num_slots, num_free_slots=len(self._free_slots))
