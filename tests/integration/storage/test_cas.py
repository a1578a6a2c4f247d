"""Compare-and-swap: a write from a stale version is refused, two racing writers from one version
never both win, and unconditional writers never lose an update."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmasos.errors import ConflictError, FileNotFoundInStoreError, InvalidRequestError
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage

ALICE = Principal("alice")


def test_a_stale_expected_version_is_refused(storage: Storage) -> None:
    view = storage.files(ALICE)
    assert view.write("c.txt", "one", expected_version=0) == 1
    assert view.write("c.txt", "two", expected_version=1) == 2
    with pytest.raises(ConflictError) as error:
        view.write("c.txt", "stale", expected_version=1)
    assert "version 2" in str(error.value)
    with pytest.raises(ConflictError):
        view.write("c.txt", "ahead", expected_version=3)
    with pytest.raises(ConflictError):
        view.write("c.txt", "new?", expected_version=0)  # 0: the path must not exist
    assert view.read("c.txt") == b"two"
    assert len(view.history("c.txt")) == 2


def test_expected_version_zero_on_a_deleted_path_conflicts(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("c.txt", "one")
    view.delete("c.txt")
    with pytest.raises(ConflictError):
        view.write("c.txt", "again", expected_version=0)
    assert view.write("c.txt", "again", expected_version=2) == 3


def test_a_stale_delete_is_refused(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("c.txt", "one")
    view.write("c.txt", "two")
    with pytest.raises(ConflictError):
        view.delete("c.txt", expected_version=1)
    assert view.read("c.txt") == b"two"


def test_expected_version_must_be_a_non_negative_integer(storage: Storage) -> None:
    view = storage.files(ALICE)
    for bad in (-1, 1.5, "1"):
        with pytest.raises(InvalidRequestError) as error:
            view.write("c.txt", "x", expected_version=bad)  # type: ignore[arg-type]
        assert error.value.field == "expected_version"
    with pytest.raises(FileNotFoundInStoreError):
        view.read("c.txt")


def race(storage: Storage, path: str, writers: int) -> tuple[int, list[object]]:
    """`writers` threads each read the path's version, wait for all to have read it, then write
    from it; the base version and what each write returned (a version or the error)."""
    barrier = threading.Barrier(writers, timeout=60)  # a guard against a hang

    def write(index: int) -> tuple[int, int | ConflictError]:
        view = storage.files(ALICE)
        base = view.stat(path).version
        barrier.wait()
        try:
            return base, view.write(path, f"writer {index}", expected_version=base)
        except ConflictError as error:
            return base, error

    with ThreadPoolExecutor(writers) as pool:
        outcomes = list(pool.map(write, range(writers)))
    bases = {base for base, _ in outcomes}
    assert len(bases) == 1  # every writer read the same version
    return bases.pop(), [outcome for _, outcome in outcomes]


@pytest.mark.parametrize("writers", [2, 4])
def test_of_writers_racing_from_one_version_exactly_one_wins(
    storage: Storage, writers: int
) -> None:
    view = storage.files(ALICE)
    view.write("race.txt", "start")
    rounds = 10
    for _ in range(rounds):
        base, outcomes = race(storage, "race.txt", writers)
        won = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, int)]
        lost = [outcome for outcome in outcomes if isinstance(outcome, ConflictError)]
        assert len(won) == 1 and len(lost) == writers - 1
        assert outcomes[won[0]] == base + 1
        assert view.read("race.txt") == f"writer {won[0]}".encode()
    assert len(view.history("race.txt")) == rounds + 1


def test_concurrent_unconditional_writes_lose_no_update(storage: Storage) -> None:
    """Writes without expected_version from several threads all land, each as its own version
    (none is lost, and none fails with ConflictError: the caller asked for no check)."""
    threads, writes = 6, 20
    barrier = threading.Barrier(threads, timeout=60)

    def write(index: int) -> list[int]:
        view = storage.files(ALICE)
        barrier.wait()
        return [view.write("log.txt", f"{index}-{n}") for n in range(writes)]

    with ThreadPoolExecutor(threads) as pool:
        numbers = [n for got in pool.map(write, range(threads)) for n in got]
    total = threads * writes
    assert sorted(numbers) == list(range(1, total + 1))  # every write got its own version
    view = storage.files(ALICE)
    assert [v.version for v in view.history("log.txt")] == list(range(1, total + 1))
    stored = {view.read("log.txt", version=n).decode() for n in range(1, total + 1)}
    assert stored == {f"{i}-{n}" for i in range(threads) for n in range(writes)}


def test_a_purge_with_a_stale_expected_version_purges_nothing(storage: Storage) -> None:
    view = storage.files(Principal("alice"))
    view.write("p.txt", "one")
    view.write("p.txt", "two")
    with pytest.raises(ConflictError):
        view.purge("p.txt", expected_version=1)
    assert [v.version for v in view.history("p.txt")] == [1, 2]
    assert view.purge("p.txt", expected_version=2) > 0
