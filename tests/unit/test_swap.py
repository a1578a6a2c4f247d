import errno
from pathlib import Path

import pytest

from llmasos.errors import SwapError
from llmasos.kernel.swap import SwapLocation, SwapSpace
from llmasos.security.crypto import Sealer

SECRET = b"the KV state of a confidential prompt"


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


def test_a_snapshot_that_cannot_be_read_stays_in_swap(tmp_path):
    swap = SwapSpace(ram_limit_bytes=1, directory=tmp_path)
    swap.put(3, b"precious")
    (path,) = tmp_path.rglob("3-*.kv")
    path.rename(path.with_suffix(".away"))  # an I/O error on the way back
    with pytest.raises(SwapError, match="pid 3: its KV snapshot could not be read"):
        swap.take(3)
    assert swap.location(3) is SwapLocation.DISK
    path.with_suffix(".away").rename(path)  # the disk is back
    assert swap.take(3) == b"precious"
    assert swap.location(3) is None


def test_a_spill_the_disk_refuses_keeps_the_snapshot_in_ram(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the swap folder should go")
    swap = SwapSpace(ram_limit_bytes=1, directory=blocker)
    swap.put(1, b"kept")
    assert swap.location(1) is SwapLocation.RAM
    assert swap.usage().ram_bytes == 4
    assert swap.take(1) == b"kept"


def test_a_disk_that_fills_mid_spill_leaves_no_partial_file_and_loses_nothing(
    tmp_path, monkeypatch
):
    def fills_up(path: Path, data: bytes) -> int:
        with path.open("wb") as handle:
            handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", fills_up)
    swap = SwapSpace(ram_limit_bytes=1, directory=tmp_path)
    swap.put(1, b"a snapshot of some length")
    assert swap.location(1) is SwapLocation.RAM
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.undo()
    assert swap.take(1) == b"a snapshot of some length"


def test_sealed_spills_hold_no_plaintext_and_come_back_whole(tmp_path):
    swap = SwapSpace(ram_limit_bytes=1, directory=tmp_path, sealer=Sealer(bytes(range(32))))
    swap.put(5, SECRET)
    (path,) = tmp_path.rglob("5-*.kv")
    assert SECRET not in path.read_bytes()
    assert swap.size(5) == len(path.read_bytes())
    assert swap.take(5) == SECRET


def test_a_tampered_sealed_spill_is_refused_and_stays(tmp_path):
    swap = SwapSpace(ram_limit_bytes=1, directory=tmp_path, sealer=Sealer(bytes(range(32))))
    swap.put(5, SECRET)
    swap.put(6, SECRET)
    (five,) = tmp_path.rglob("5-*.kv")
    (six,) = tmp_path.rglob("6-*.kv")
    original = bytearray(five.read_bytes())
    flipped = bytearray(original)
    flipped[-1] ^= 1
    five.write_bytes(bytes(flipped))
    with pytest.raises(SwapError, match=r"pid 5: .*integrity check"):
        swap.take(5)
    assert swap.location(5) is SwapLocation.DISK
    five.write_bytes(six.read_bytes())  # another process's snapshot in its place
    with pytest.raises(SwapError, match="pid 5"):
        swap.take(5)
    five.write_bytes(bytes(original))
    assert swap.take(5) == SECRET
