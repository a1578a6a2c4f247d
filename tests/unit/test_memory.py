from llmasos.kernel.memory import MemoryManager


def test_slots_are_handed_out_lowest_first_and_run_out():
    memory = MemoryManager(3)
    assert [memory.allocate() for _ in range(4)] == [0, 1, 2, None]
    memory.free(1)
    assert memory.allocate() == 1


def test_hole_reports_a_used_slot_above_a_free_one():
    memory = MemoryManager(4)
    for _ in range(3):
        memory.allocate()
    assert memory.hole() is None
    memory.free(0)
    assert memory.hole() == (2, 0)
    memory.free(2)
    assert memory.hole() == (1, 0)
    memory.free(1)
    assert memory.hole() is None
    assert memory.usage().num_free_slots == 4
