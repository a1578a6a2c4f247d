"""The pager: moves KV state between engine slots, the prefix cache and swap.

It is the kernel's mechanism for memory; the kernel's tick decides when and for whom. Every
engine call that changes what a slot holds goes through here, so the books (MemoryManager), the
prefix cache and the engine always agree.

Getting a slot for a process, in order of preference:
  1. its own snapshot back from swap (a context switch in);
  2. a cached slot that already holds the start of its prompt (taken over, trimmed, no copy);
  3. a free slot, with the longest matching prefix copied from a live slot (llama_memory_seq_cp);
  4. a free slot, computing the prompt from scratch.
A free slot is the lowest empty one, else the least recently used cached one (evicted), else the
slot of a victim the caller names (swapped out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmasos.engine.base import Engine
from llmasos.errors import EngineError
from llmasos.kernel.memory import MemoryManager, SlotState
from llmasos.kernel.prefix_cache import PrefixCache
from llmasos.kernel.process import Process
from llmasos.kernel.stats import MemoryReport, ProcessMemory
from llmasos.kernel.swap import SwapSpace


@dataclass
class PagerStats:
    prefix_hits: int = 0  # new processes that started from a cached prefix
    prefix_misses: int = 0
    prefix_tokens_reused: int = 0  # prompt tokens not recomputed thanks to the cache
    prefix_copies: int = 0  # prefixes copied from another slot (the rest were taken over)
    evictions: int = 0  # cached slots dropped to make room
    swap_outs: int = 0
    swap_ins: int = 0
    slot_moves: int = 0


class Pager:
    def __init__(
        self,
        engine: Engine,
        memory: MemoryManager,
        prefix_cache: PrefixCache,
        swap: SwapSpace,
        *,
        min_prefix_tokens: int,
    ) -> None:
        self.engine = engine
        self.memory = memory
        self.prefix_cache = prefix_cache
        self.swap = swap
        self.min_prefix_tokens = min_prefix_tokens
        self.stats = PagerStats()

    # -- residency ------------------------------------------------------------------------

    def make_resident(
        self, process: Process, victim: Callable[[frozenset[int]], Process | None]
    ) -> bool:
        """Give `process` a slot holding what it has computed so far. `victim(protected_slots)`
        names a process to swap out when no slot is free. False when nothing could be done."""
        if process.slot is not None:
            return True
        if self.swap.location(process.pid) is not None:
            slot = self._free_slot(victim, frozenset())
            if slot is None:
                return False
            self._load(process, self.swap.take(process.pid), slot)
            self.stats.swap_ins += 1
            return True
        return self._start(process, victim)

    def _start(self, process: Process, victim: Callable[[frozenset[int]], Process | None]) -> bool:
        """First residency: reuse the longest cached prefix of the prompt, if worth it."""
        match = self.prefix_cache.match_prefix(process.prompt_tokens[:-1])
        length = match.length if match.length >= self.min_prefix_tokens else 0
        cached = sorted(s for s in match.slots if self.memory.state(s) is SlotState.CACHED)
        if length and cached:
            slot = cached[0]
            if self.engine.truncate(slot, length):
                self._assign(process, slot, length)
                self.prefix_cache.truncate(slot, length)
                self._hit(process, length)
                return True
            self._drop_cached(slot)  # the engine could not trim it: start over elsewhere
        sources = frozenset(match.slots) if length else frozenset()
        slot = self._free_slot(victim, sources)
        if slot is None and sources:
            # Only the prefix's holders could make room: take one, and copy from what remains.
            slot = self._free_slot(victim, frozenset())
            sources = frozenset(s for s in sources if self.memory.state(s) is SlotState.OWNED)
        if slot is None:
            return False
        live_sources = [s for s in sorted(sources) if self.memory.state(s) is SlotState.OWNED]
        if length and live_sources:
            self.engine.copy_prefix(live_sources[0], slot, length)
            self._assign(process, slot, length)
            self.prefix_cache.insert(slot, process.prompt_tokens[:length])
            self.stats.prefix_copies += 1
            self._hit(process, length)
        else:
            self._assign(process, slot, 0)
            self.prefix_cache.insert(slot, [])
            self.stats.prefix_misses += 1
        return True

    def _hit(self, process: Process, length: int) -> None:
        process.cached_prompt_tokens = length
        self.stats.prefix_hits += 1
        self.stats.prefix_tokens_reused += length

    def _assign(self, process: Process, slot: int, num_computed: int) -> None:
        process.slot = slot
        process.num_computed_tokens = num_computed
        self.memory.own(slot, process.pid, num_computed)

    def _free_slot(
        self, victim: Callable[[frozenset[int]], Process | None], keep: frozenset[int]
    ) -> int | None:
        """An empty slot: free, else an evicted cached one, else a swapped-out victim's.
        Slots in `keep` are neither evicted nor taken from their owner."""
        slot = self.memory.best_free()
        if slot is not None:
            return slot
        slot = self.memory.least_recently_cached(exclude=keep)
        if slot is not None:
            self._drop_cached(slot)
            self.stats.evictions += 1
            return slot
        process = victim(keep)
        if process is None or process.slot is None:
            return None
        slot = process.slot
        self.swap_out(process)
        return slot

    def _drop_cached(self, slot: int) -> None:
        self.engine.release(slot)
        self.prefix_cache.remove(slot)
        self.memory.free(slot)

    def _load(self, process: Process, state: bytes, slot: int) -> None:
        try:
            self.engine.restore(state, slot)
        except EngineError:
            self.swap.put(process.pid, state)  # keep it for another try
            raise
        process.slot = slot
        self.memory.own(slot, process.pid, process.num_computed_tokens)
        self.prefix_cache.insert(slot, process.tokens[: process.num_computed_tokens])

    def swap_out(self, process: Process) -> None:
        """Save the process's KV to swap and free its slot (a context switch out)."""
        assert process.slot is not None
        self.swap.put(process.pid, self.engine.snapshot(process.slot))
        self._release(process)
        self.stats.swap_outs += 1

    def release(self, process: Process, *, keep_as_cache: bool) -> None:
        """The process ended: drop its swap entry, and keep or free its KV."""
        self.swap.discard(process.pid)
        if process.slot is None:
            return
        if keep_as_cache and process.num_computed_tokens:
            self.memory.cache(process.slot)
            process.slot = None
        else:
            self._release(process)

    def _release(self, process: Process) -> None:
        assert process.slot is not None
        self.engine.release(process.slot)
        self.prefix_cache.remove(process.slot)
        self.memory.free(process.slot)
        process.slot = None

    # -- bookkeeping after a step -----------------------------------------------------------

    def computed(self, process: Process, tokens: Sequence[int]) -> None:
        """`tokens` were just decoded into the process's slot."""
        assert process.slot is not None
        self.memory.set_tokens(process.slot, process.num_computed_tokens)
        self.prefix_cache.extend(process.slot, tokens)

    def compact(self, owner_of: Callable[[int], Process]) -> None:
        """Move live processes below free and cached slots, so running slots stay consecutive
        (a cached slot moves up in exchange and stays cached)."""
        while (hole := self.memory.hole()) is not None:
            highest, lowest = hole
            process = owner_of(highest)
            if self.memory.state(lowest) is SlotState.FREE:
                state = self.engine.snapshot(highest)
                self._release(process)
                self._load(process, state, lowest)
            else:
                self._exchange(process, lowest)
            self.stats.slot_moves += 1

    def _exchange(self, process: Process, cached_slot: int) -> None:
        owned_slot = process.slot
        assert owned_slot is not None
        cached_tokens = self.prefix_cache.tokens(cached_slot)
        owned_state, cached_state = (self.engine.snapshot(s) for s in (owned_slot, cached_slot))
        for slot in (owned_slot, cached_slot):
            self.engine.release(slot)
        self.engine.restore(owned_state, cached_slot)
        self.engine.restore(cached_state, owned_slot)
        self.memory.exchange(owned_slot, cached_slot)
        self.prefix_cache.insert(cached_slot, process.tokens[: process.num_computed_tokens])
        self.prefix_cache.insert(owned_slot, cached_tokens)
        process.slot = cached_slot

    def report(
        self, live: Sequence[Process], reserved_pages: Callable[[Process], int]
    ) -> MemoryReport:
        """The memory report, with a row for each process in `live`."""
        usage, swap, stats = self.memory.usage(), self.swap.usage(), self.stats
        rows = []
        for process in live:
            location = self.swap.location(process.pid)
            rows.append(
                ProcessMemory(
                    pid=process.pid,
                    owner=process.owner,
                    state=process.state.value,
                    slot=process.slot,
                    kv_tokens=process.num_computed_tokens,
                    pages=self.memory.pages(process.num_computed_tokens),
                    reserved_pages=reserved_pages(process),
                    swapped_bytes=self.swap.size(process.pid),
                    swap_location=location.value if location else None,
                )
            )
        return MemoryReport(
            page_size=usage.page_size,
            total_pages=usage.total_pages,
            used_pages=usage.used_pages,
            cached_pages=usage.cached_pages,
            free_pages=usage.free_pages,
            num_slots=usage.num_slots,
            owned_slots=usage.owned_slots,
            cached_slots=usage.cached_slots,
            free_slots=usage.free_slots,
            prefix_hits=stats.prefix_hits,
            prefix_misses=stats.prefix_misses,
            prefix_tokens_reused=stats.prefix_tokens_reused,
            prefix_copies=stats.prefix_copies,
            evictions=stats.evictions,
            swap_outs=stats.swap_outs,
            swap_ins=stats.swap_ins,
            swap_ram_bytes=swap.ram_bytes,
            swap_ram_limit_bytes=swap.ram_limit_bytes,
            swap_disk_bytes=swap.disk_bytes,
            swap_spills=swap.spills,
            processes=rows,
        )

    def close(self) -> None:
        self.swap.close()
