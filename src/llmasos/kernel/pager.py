"""The pager: moves KV state between engine slots, the prefix cache and swap.

It is the kernel's mechanism for memory; the kernel's tick decides when and for whom. Every
engine call that changes what a slot holds goes through here, so the books (MemoryManager), the
prefix cache and the engine always agree.

It is also the memory ledger the planner reads (kernel/planner.py): how many slots can be had,
who has a snapshot in swap, how much of a prompt is cached.

Getting a slot for a process, in order of preference:
  1. its own snapshot back from swap (a context switch in);
  2. a cached slot that already holds the start of its prompt (taken over, trimmed, no copy);
  3. a free slot, with the longest matching prefix copied from a live slot (llama_memory_seq_cp);
  4. a free slot, computing the prompt from scratch.
A free slot is the lowest empty one, else the least recently used cached one (evicted). Slots of
processes the plan swaps out are freed by swap_out() first.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmasos.engine.base import Engine
from llmasos.errors import EngineError
from llmasos.kernel.config import KernelConfig
from llmasos.kernel.memory import MemoryManager, SlotState
from llmasos.kernel.prefix_cache import PrefixCache, PrefixMatch, RadixPrefixCache
from llmasos.kernel.process import Process
from llmasos.kernel.stats import MemoryReport, ProcessMemory
from llmasos.kernel.swap import SwapSpace
from llmasos.security.crypto import Sealer


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
    @classmethod
    def for_engine(cls, engine: Engine, config: KernelConfig) -> Pager:
        """A pager over empty books for `engine`'s slots, sized and tuned by `config`."""
        info = engine.info
        directory = config.swap_directory or Path(tempfile.gettempdir()) / "llmasos-swap"
        return cls(
            engine,
            MemoryManager(info.num_slots, info.context_length, config.page_size),
            RadixPrefixCache(),
            SwapSpace(
                config.swap_bytes,
                directory,
                sealer=Sealer(config.swap_key) if config.swap_key else None,
            ),
            min_prefix_tokens=config.min_prefix_tokens,
        )

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

    # -- the ledger the planner reads ----------------------------------------------------

    def num_available_slots(self) -> int:
        usage = self.memory.usage()
        return usage.free_slots + usage.cached_slots

    def has_snapshot(self, pid: int) -> bool:
        return self.swap.location(pid) is not None

    def reusable_prefix(self, prompt: Sequence[int]) -> PrefixMatch:
        """The cached start of `prompt` (all but its last token, whose logits are needed) that
        a first residency reuses, or an empty match when shorter than min_prefix_tokens."""
        match = self.prefix_cache.match_prefix(prompt[:-1])
        return match if match.length >= self.min_prefix_tokens else PrefixMatch(0, frozenset())

    # -- residency ------------------------------------------------------------------------

    def make_resident(self, process: Process) -> None:
        """Give `process` a slot holding what it has computed so far: its snapshot back from
        swap, or (first residency) the longest worthwhile cached start of its prompt. The
        planner made sure a free or cached slot exists. Raises EngineError (the engine
        failed) or SwapError (the snapshot could not be read; it stays in swap)."""
        if process.slot is not None:
            return
        if self.has_snapshot(process.pid):
            state = self.swap.take(process.pid)
            self._load(process, state, self._take_slot(frozenset()))
            self.stats.swap_ins += 1
            return
        self._start(process)

    def _start(self, process: Process) -> None:
        """First residency: take over a cached slot holding the start of the process's tokens
        (its prompt; a fork's also what its parent generated) trimmed, no copy; else copy that
        start from a live slot; else compute it all."""
        match = self.reusable_prefix(process.tokens)
        length, sources = match.length, match.slots
        for slot in sorted(s for s in sources if self.memory.state(s) is SlotState.CACHED):
            if self.engine.truncate(slot, length):
                self._assign(process, slot, length)
                self.prefix_cache.truncate(slot, length)
                self._hit(process, length)
                return
            self._drop_cached(slot)  # the engine could not trim it: try elsewhere
        slot = self._take_slot(sources)
        live = sorted(s for s in sources if self.memory.state(s) is SlotState.OWNED)
        if live:
            self.engine.copy_prefix(live[0], slot, length)
            self._assign(process, slot, length)
            self.prefix_cache.insert(slot, process.tokens[:length])
            self.stats.prefix_copies += 1
            self._hit(process, length)
        else:
            self._assign(process, slot, 0)
            self.prefix_cache.insert(slot, [])
            self.stats.prefix_misses += 1

    def _hit(self, process: Process, length: int) -> None:
        process.cached_prompt_tokens = min(length, len(process.prompt_tokens))
        self.stats.prefix_hits += 1
        self.stats.prefix_tokens_reused += length

    def _assign(self, process: Process, slot: int, num_computed: int) -> None:
        process.slot = slot
        process.num_computed_tokens = num_computed
        self.memory.own(slot, process.pid, num_computed)

    def _take_slot(self, keep: frozenset[int]) -> int:
        """An empty slot: a free one, else the least recently used cached one (evicted),
        sparing the cached slots in `keep` while another can go."""
        slot = self.memory.best_free()
        if slot is None:
            slot = self.memory.least_recently_cached(exclude=keep)
        if slot is None:
            slot = self.memory.least_recently_cached()
        if slot is None:
            raise AssertionError("the plan asked for a slot that does not exist")
        if self.memory.state(slot) is SlotState.CACHED:
            self._drop_cached(slot)
            self.stats.evictions += 1
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
