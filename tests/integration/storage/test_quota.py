"""The storage quota: bytes per owner, every version counts; a refused write stores nothing."""

from __future__ import annotations

import pytest

from llmasos.errors import FileNotFoundInStoreError, StorageQuotaError
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage
from tests.integration.storage.conftest import Backend

ALICE = Principal("alice")
QUOTA = 100


@pytest.fixture
def limited(backend: Backend) -> Storage:
    """A Storage with a quota of 100 bytes per owner."""
    return backend.open(quota_bytes=QUOTA)


def test_a_write_past_the_quota_is_refused_and_stores_nothing(limited: Storage) -> None:
    view = limited.files(ALICE)
    assert view.write("a.txt", "x" * 60) == 1
    with pytest.raises(StorageQuotaError) as error:
        view.write("a.txt", "y" * 41)
    assert error.value.field == "data" and "100" in str(error.value)
    assert view.usage() == 60
    assert view.read("a.txt") == b"x" * 60
    assert [v.version for v in view.history("a.txt")] == [1]
    with pytest.raises(StorageQuotaError):
        view.write("b.txt", "z" * 41)  # a new path: nothing of it may appear
    with pytest.raises(FileNotFoundInStoreError):
        view.history("b.txt")
    assert [f.path for f in view.list("")] == ["a.txt"]
    assert view.write("b.txt", "z" * 40) == 1  # exactly at the quota is allowed
    assert view.usage() == QUOTA


def test_history_counts_toward_the_quota(limited: Storage) -> None:
    view = limited.files(ALICE)
    view.write("a.txt", "1" * 50)
    view.write("a.txt", "2" * 40)
    with pytest.raises(StorageQuotaError):
        view.write("a.txt", "3" * 20)  # the file would hold 20 bytes, its history 110
    view.delete("a.txt")  # a deletion adds no bytes and frees none
    assert view.usage() == 90
    with pytest.raises(StorageQuotaError):
        view.rollback("a.txt", 2)  # a rollback is a new version: its bytes count
    assert view.history("a.txt")[-1].deleted


def test_purge_frees_the_quota(limited: Storage) -> None:
    view = limited.files(ALICE)
    view.write("a.txt", "1" * 50)
    view.write("a.txt", "2" * 50)
    with pytest.raises(StorageQuotaError):
        view.write("b.txt", "3")
    assert view.purge("a.txt") == 100
    assert view.usage() == 0
    assert view.write("b.txt", "4" * 100) == 1


def test_a_move_counts_the_moved_bytes_again(limited: Storage) -> None:
    view = limited.files(ALICE)
    view.write("a.txt", "1" * 60)
    with pytest.raises(StorageQuotaError):
        view.move("a.txt", "b.txt")  # the destination's version is new history
    assert view.read("a.txt") == b"1" * 60  # the source is untouched
    with pytest.raises(FileNotFoundInStoreError):
        view.read("b.txt")
    assert len(view.history("a.txt")) == 1


def test_the_quota_is_per_owner_and_an_agent_spends_its_owner_s(limited: Storage) -> None:
    alice, helper = limited.files(ALICE), limited.files(Principal("alice", "helper"))
    bob = limited.files(Principal("bob"))
    alice.write("a.txt", "1" * 60)
    with pytest.raises(StorageQuotaError):
        helper.write("h.txt", "2" * 41)
    assert helper.write("h.txt", "2" * 40) == 1
    assert alice.usage() == helper.usage() == 100
    assert bob.write("b.txt", "3" * 100) == 1  # bob has a quota of his own
    assert bob.usage() == 100
