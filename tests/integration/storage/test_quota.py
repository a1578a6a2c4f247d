"""The storage quota: bytes per owner, every version counts (its content plus a fixed overhead
for its row, so empty versions are not free); a refused write stores nothing; agent memory
counts with its owner's files."""

from __future__ import annotations

import pytest

from llmasos.errors import FileNotFoundInStoreError, StorageQuotaError
from llmasos.storage.file_store import VERSION_OVERHEAD_BYTES as OVER
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage
from tests.integration.storage.conftest import Backend, Memo

ALICE = Principal("alice")
QUOTA = 2 * OVER + 100  # two versions holding 100 content bytes between them


@pytest.fixture
def limited(backend: Backend) -> Storage:
    return backend.open(quota_bytes=QUOTA)


def test_a_write_past_the_quota_is_refused_and_stores_nothing(limited: Storage) -> None:
    view = limited.files(ALICE)
    assert view.write("a.txt", "x" * 60) == 1
    with pytest.raises(StorageQuotaError) as error:
        view.write("a.txt", "y" * 41)
    assert error.value.field == "data" and str(QUOTA) in str(error.value)
    assert view.usage() == OVER + 60
    assert view.read("a.txt") == b"x" * 60
    assert [v.version for v in view.history("a.txt")] == [1]
    with pytest.raises(StorageQuotaError):
        view.write("b.txt", "z" * 41)  # a new path: nothing of it may appear
    with pytest.raises(FileNotFoundInStoreError):
        view.history("b.txt")
    assert [f.path for f in view.list("")] == ["a.txt"]
    assert view.write("b.txt", "z" * 40) == 1  # exactly at the quota is allowed
    assert view.usage() == QUOTA


def test_history_and_empty_versions_count_toward_the_quota(limited: Storage) -> None:
    view = limited.files(ALICE)
    view.write("a.txt", "1" * 50)
    view.write("a.txt", "2" * 40)
    assert view.usage() == 2 * OVER + 90
    with pytest.raises(StorageQuotaError):
        view.delete("a.txt")  # a deletion is a version: its row counts
    with pytest.raises(StorageQuotaError):
        view.write("a.txt", "")  # so does an empty one
    assert view.read("a.txt") == b"2" * 40


def test_purge_frees_the_quota_and_versions_never_repeat(limited: Storage) -> None:
    view = limited.files(ALICE)
    view.write("a.txt", "1" * 50)
    view.write("a.txt", "2" * 50)
    with pytest.raises(StorageQuotaError):
        view.write("b.txt", "3")
    assert view.purge("a.txt") == QUOTA
    assert view.usage() == 0
    with pytest.raises(FileNotFoundInStoreError):
        view.read("a.txt")
    assert view.write("a.txt", "4" * 100) == 3  # after the purged 1 and 2


def test_a_move_counts_the_moved_bytes_again(limited: Storage) -> None:
    view = limited.files(ALICE)
    view.write("a.txt", "1" * 60)
    with pytest.raises(StorageQuotaError):
        view.move("a.txt", "b.txt")  # the destination's version and the source's deletion
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
    assert alice.usage() == helper.usage() == QUOTA
    assert bob.write("b.txt", "3" * 100) == 1  # bob has a quota of his own
    assert bob.usage() == OVER + 100


def test_agent_memory_counts_with_its_owners_files_and_forgetting_frees_it(
    backend: Backend, memo: Memo
) -> None:
    storage = backend.open(quota_bytes=4 * OVER + 100)
    memory = storage.memory(Principal("alice", "bot"), memo)
    storage.files(ALICE).write("a.txt", "x" * 50)
    kept = memory.store("y" * 40)
    memory.core("persona", "z" * 10)
    assert storage.files(ALICE).usage() == 3 * OVER + 100
    with pytest.raises(StorageQuotaError):
        memory.store("w" * 300)
    assert memory.count() == 1
    assert memory.forget([kept.key]) == 1
    assert storage.files(ALICE).usage() == 2 * OVER + 60
    memory.core("persona", "")  # removing the block frees it too
    assert storage.files(ALICE).usage() == OVER + 50
