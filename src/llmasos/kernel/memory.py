"""KV memory accounting: which engine slots are free.

A process is resident when it holds a slot. Each slot has its own KV stream sized for the longest
allowed process (prompt plus max_tokens never exceeds the context length), so a resident process
can never run out of KV space half way. The memory manager keeps the books and answers "is there
room?"; choosing whom to swap out is the kernel's job.
"""

from __future__ import annotations

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
        self._free_slots = list(range(num_slots - 1, -1, -1))  # pop() hands out slot 0 first

    def can_allocate(self) -> bool:
        return bool(self._free_slots)

    def allocate(self) -> int | None:
        """A free slot, or None when every slot is taken."""
        return self._free_slots.pop() if self._free_slots else None

    def free(self, slot: int) -> None:
        self._free_slots.append(slot)

    def usage(self) -> MemoryUsage:
        return MemoryUsage(num_slots=self.num_slots, num_free_slots=len(self._free_slots))
