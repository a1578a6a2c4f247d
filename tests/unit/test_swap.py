from llmasos.kernel.swap import SwapLocation, SwapSpace


def test_snapshots_stay_in_ram_under_the_budget_and_spill_oldest_first(tmp_path):
    swap = SwapSpace(ram_limit_bytes=10, directory=tmp_path)
    swap.put(1, b"aaaa")
    swap.put(2, b"bbbb")
    assert swap.location(1) is SwapLocation.RAM
    swap.put(3, b"cccc")  # 12 bytes > 10: the oldest goes to disk
    assert [swap.location(pid) for pid in (1, 2, 3)] == [
        SwapLocation.DISK,
        SwapLocation.RAM,
        SwapLocation.RAM,
    ]
    usage = swap.usage()
    assert (usage.ram_bytes, usage.disk_bytes, usage.entries) == (8, 4, 3)
    assert swap.take(1) == b"aaaa"
    assert swap.take(3) == b"cccc"
    assert swap.location(1) is None
    assert list(tmp_path.rglob("*.kv")) == []


def test_a_snapshot_larger_than_the_budget_goes_straight_to_disk(tmp_path):
    swap = SwapSpace(ram_limit_bytes=2, directory=tmp_path)
    swap.put(7, b"too big")
    assert swap.location(7) is SwapLocation.DISK
    assert swap.size(7) == 7
    swap.close()
    assert not any(tmp_path.iterdir())
