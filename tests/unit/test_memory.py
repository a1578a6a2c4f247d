from llmasos.kernel.memory import MemoryManager, SlotState


def test_pages_count_tokens_rounded_up_per_slot():
    memory = MemoryManager(num_slots=3, context_length=64, page_size=16)
    memory.own(0, pid=1, num_tokens=17)
    memory.own(1, pid=2, num_tokens=16)
    memory.cache(1)
    usage = memory.usage()
    assert (usage.total_pages, usage.used_pages, usage.cached_pages, usage.free_pages) == (
        12,
        2,
        1,
        9,
    )
    assert (usage.owned_slots, usage.cached_slots, usage.free_slots) == (1, 1, 1)


def test_lowest_free_and_least_recently_cached():
    memory = MemoryManager(num_slots=3, context_length=64, page_size=16)
    assert memory.lowest_free() == 0
    for slot, pid in ((0, 1), (1, 2), (2, 3)):
        memory.own(slot, pid, 4)
    assert memory.lowest_free() is None
    memory.cache(2)
    memory.cache(0)
    assert memory.least_recently_cached() == 2
    memory.touch(2)
    assert memory.least_recently_cached() == 0
    assert memory.least_recently_cached(exclude=frozenset({0})) == 2


def test_hole_is_a_slot_not_owned_between_owned_ones():
    memory = MemoryManager(num_slots=5, context_length=64, page_size=16)
    for slot in range(4):
        memory.own(slot, slot + 10, 4)
    memory.cache(0)
    assert memory.hole() is None  # 1..3 are still consecutive
    memory.cache(1)
    memory.own(0, 20, 4)
    assert memory.hole() == (3, 1)
    memory.exchange(3, 1)
    assert [memory.state(s) for s in range(4)] == [
        SlotState.OWNED,
        SlotState.OWNED,
        SlotState.OWNED,
        SlotState.CACHED,
    ]
    assert memory.owner(1) == 13
    assert memory.hole() is None


def test_a_free_slot_next_to_the_owned_ones_is_preferred():
    memory = MemoryManager(num_slots=5, context_length=64, page_size=16)
    memory.own(3, 1, 4)
    assert memory.best_free() == 4
    memory.own(4, 2, 4)
    assert memory.best_free() == 2
    memory.cache(3)
    memory.cache(4)
    assert memory.best_free() == 0
