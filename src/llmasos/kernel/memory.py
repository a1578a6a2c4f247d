"""KV memory books: engine slots, the tokens each holds, and pages.

Each engine slot is a KV stream that can hold `context_length` tokens. A slot is
    FREE    empty,
    OWNED   holding a live process's KV (it is resident), or
    CACHED  holding the KV of a process that ended, kept as a prefix cache until the slot is
            needed (least recently used first).
Memory is accounted in pages of `page_size` tokens: a slot holding n tokens uses ceil(n /
page_size) pages. These books never touch the engine and decide no policy; the kernel's pager
keeps them in step with the engine.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass


class SlotState(enum.Enum):
    FREE = "free"
    OWNED = "owned"
    CACHED = "cached"


@dataclass(frozen=True)
class MemoryUsage:
    page_size: int
    num_slots: int
    pages_per_slot: int
    owned_slots: int
    cached_slots: int
    used_pages: int  # held by live processes
    cached_pages: int  # held by ended processes kept as prefix cache

    @property
    def free_slots(self) -> int:
        return self.num_slots - self.owned_slots - self.cached_slots

    @property
    def total_pages(self) -> int:
        return self.num_slots * self.pages_per_slot

    @property
    def free_pages(self) -> int:
        return self.total_pages - self.used_pages - self.cached_pages


class MemoryManager:
    def __init__(self, num_slots: int, context_length: int, page_size: int) -> None:
        self.num_slots = num_slots
        self.page_size = page_size
        self.pages_per_slot = -(-context_length // page_size)
        self._state = [SlotState.FREE] * num_slots
        self._owner: list[int | None] = [None] * num_slots
        self._tokens = [0] * num_slots
        self._last_used = [0] * num_slots
        self._clock = itertools.count(1)

    def pages(self, num_tokens: int) -> int:
        return -(-num_tokens // self.page_size)

    def state(self, slot: int) -> SlotState:
        return self._state[slot]

    def owner(self, slot: int) -> int | None:
        return self._owner[slot]

    def tokens(self, slot: int) -> int:
        return self._tokens[slot]

    def lowest_free(self) -> int | None:
        return next((s for s in range(self.num_slots) if self._state[s] is SlotState.FREE), None)

    def best_free(self) -> int | None:
        """A free slot, next to the owned ones if possible so they stay consecutive."""
        owned = self._owned()
        if owned:
            for slot in (owned[-1] + 1, owned[0] - 1):
                if 0 <= slot < self.num_slots and self._state[slot] is SlotState.FREE:
                    return slot
        return self.lowest_free()

    def _owned(self) -> list[int]:
        return [s for s in range(self.num_slots) if self._state[s] is SlotState.OWNED]

    def least_recently_cached(self, exclude: frozenset[int] = frozenset()) -> int | None:
        cached = [
            s
            for s in range(self.num_slots)
            if self._state[s] is SlotState.CACHED and s not in exclude
        ]
        return min(cached, key=lambda s: self._last_used[s], default=None)

    def own(self, slot: int, pid: int, num_tokens: int) -> None:
        """`slot` (free or cached) now holds `num_tokens` of live process `pid`."""
        assert self._state[slot] is not SlotState.OWNED, f"slot {slot} is owned"
        self._state[slot] = SlotState.OWNED
        self._owner[slot] = pid
        self.set_tokens(slot, num_tokens)

    def cache(self, slot: int) -> None:
        """The owner of `slot` ended; its KV stays as prefix cache."""
        self._state[slot] = SlotState.CACHED
        self._owner[slot] = None
        self.touch(slot)

    def free(self, slot: int) -> None:
        self._state[slot] = SlotState.FREE
        self._owner[slot] = None
        self._tokens[slot] = 0

    def set_tokens(self, slot: int, num_tokens: int) -> None:
        self._tokens[slot] = num_tokens

    def touch(self, slot: int) -> None:
        self._last_used[slot] = next(self._clock)

    def hole(self) -> tuple[int, int] | None:
        """(highest owned slot, a slot not owned between the owned ones), or None when the
        owned slots are consecutive: llama.cpp batches sequences in one pass only then."""
        owned = self._owned()
        if not owned or owned[-1] - owned[0] + 1 == len(owned):
            return None
        gap = next(s for s in range(owned[0], owned[-1]) if self._state[s] is not SlotState.OWNED)
        return owned[-1], gap

    def exchange(self, owned_slot: int, cached_slot: int) -> None:
        """The contents of an owned and a cached slot traded places."""
        pid, tokens = self._owner[owned_slot], self._tokens[owned_slot]
        stamp = self._last_used[cached_slot]
        self._state[owned_slot], self._state[cached_slot] = SlotState.CACHED, SlotState.OWNED
        self._owner[owned_slot], self._owner[cached_slot] = None, pid
        self._tokens[owned_slot], self._tokens[cached_slot] = self._tokens[cached_slot], tokens
        self._last_used[owned_slot] = stamp

    def usage(self) -> MemoryUsage:
        def pages_in(state: SlotState) -> int:
            return sum(
                self.pages(self._tokens[s])
                for s in range(self.num_slots)
                if self._state[s] is state
            )

        return MemoryUsage(
            page_size=self.page_size,
            num_slots=self.num_slots,
            pages_per_slot=self.pages_per_slot,
            owned_slots=self._state.count(SlotState.OWNED),
            cached_slots=self._state.count(SlotState.CACHED),
            used_pages=pages_in(SlotState.OWNED),
            cached_pages=pages_in(SlotState.CACHED),
        )
