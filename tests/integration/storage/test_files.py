"""Versioned files: every write is a version; read, history, diff, rollback, delete, move, purge."""

from __future__ import annotations

import pytest

from llmasos.errors import FileNotFoundInStoreError, InvalidRequestError, PathExistsError
from llmasos.storage.file_store import VERSION_OVERHEAD_BYTES as OVER
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage

ALICE = Principal("alice")


def test_versions_count_up_and_each_version_reads_back(storage: Storage) -> None:
    view = storage.files(ALICE)
    contents = [f"line one\nversion {n}\n" for n in range(1, 6)]
    assert [view.write("notes/a.txt", text) for text in contents] == [1, 2, 3, 4, 5]
    assert view.read("notes/a.txt") == contents[-1].encode()
    for number, text in enumerate(contents, start=1):
        assert view.read("notes/a.txt", version=number) == text.encode()
    with pytest.raises(FileNotFoundInStoreError):
        view.read("notes/a.txt", version=6)
    with pytest.raises(InvalidRequestError) as error:
        view.read("notes/a.txt", version=0)
    assert error.value.field == "version"
    assert view.stat("notes/a.txt").version == 5
    assert view.stat("/notes/a.txt/").path == "notes/a.txt"  # slashes around are the same path


def test_history_is_oldest_first_with_sizes_and_author(storage: Storage) -> None:
    view = storage.files(ALICE)
    for text in ("a", "bb", "ccc"):
        view.write("h.txt", text)
    history = view.history("h.txt")
    assert [(v.version, v.size, v.deleted, v.author) for v in history] == [
        (1, 1, False, "alice"),
        (2, 2, False, "alice"),
        (3, 3, False, "alice"),
    ]
    assert len({v.digest for v in history}) == 3
    assert history[0].modified_at <= history[1].modified_at <= history[2].modified_at


def test_diff_shows_removed_and_added_lines(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("doc.md", "title\nold line\nend\n")
    view.write("doc.md", "title\nnew line\nend\n")
    view.write("doc.md", "title\nnewest line\nend\n")
    diff = view.diff("doc.md", 1, 2)
    assert "-old line\n" in diff and "+new line\n" in diff
    assert " title\n" in diff and "@1" in diff and "@2" in diff
    latest = view.diff("doc.md", 1)  # to the latest version
    assert "-old line\n" in latest and "+newest line\n" in latest
    assert view.diff("doc.md", 2, 2) == ""


def test_rollback_writes_the_old_content_as_a_new_version(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("r.txt", "first")
    view.write("r.txt", "second")
    view.write("r.txt", "third")
    assert view.rollback("r.txt", 1) == 4
    assert view.read("r.txt") == b"first"
    assert [view.read("r.txt", version=n) for n in (1, 2, 3, 4)] == [
        b"first", b"second", b"third", b"first",
    ]  # fmt: skip
    assert view.history("r.txt")[-1].digest == view.history("r.txt")[0].digest


def test_delete_is_a_version_and_rollback_restores(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("d.txt", "keep me")
    view.write("d.txt", "keep me too")
    assert view.delete("d.txt") == 3
    with pytest.raises(FileNotFoundInStoreError):
        view.read("d.txt")
    with pytest.raises(FileNotFoundInStoreError):
        view.stat("d.txt")
    with pytest.raises(FileNotFoundInStoreError):
        view.read("d.txt", version=3)  # the deletion itself has no content
    with pytest.raises(FileNotFoundInStoreError):
        view.delete("d.txt")  # already deleted
    assert view.list("") == []
    history = view.history("d.txt")
    assert [v.deleted for v in history] == [False, False, True]
    assert view.read("d.txt", version=1) == b"keep me"  # older versions stay readable
    assert view.rollback("d.txt", 2) == 4
    assert view.read("d.txt") == b"keep me too"
    assert [f.path for f in view.list("")] == ["d.txt"]


def test_delete_of_a_missing_file_is_refused(storage: Storage) -> None:
    view = storage.files(ALICE)
    with pytest.raises(FileNotFoundInStoreError):
        view.delete("never.txt")
    with pytest.raises(FileNotFoundInStoreError):
        view.history("never.txt")


def test_list_shows_live_files_under_a_folder(storage: Storage) -> None:
    view = storage.files(ALICE)
    for path in ("a/x.txt", "a/y/z.txt", "ab/w.txt", "b.txt"):
        view.write(path, path)
    view.delete("b.txt")
    assert [f.path for f in view.list("")] == ["a/x.txt", "a/y/z.txt", "ab/w.txt"]
    assert [f.path for f in view.list("a")] == ["a/x.txt", "a/y/z.txt"]  # not ab/
    assert [f.path for f in view.list("a/y")] == ["a/y/z.txt"]
    assert view.list("c") == []


def test_move_is_atomic_and_leaves_a_deletion_at_the_source(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("inbox/m.txt", "draft 1")
    view.write("inbox/m.txt", "draft 2")
    assert view.move("inbox/m.txt", "done/m.txt") == 1
    assert view.read("done/m.txt") == b"draft 2"
    with pytest.raises(FileNotFoundInStoreError):
        view.read("inbox/m.txt")
    source = view.history("inbox/m.txt")
    assert [(v.version, v.deleted) for v in source] == [(1, False), (2, False), (3, True)]
    assert [f.path for f in view.list("")] == ["done/m.txt"]
    assert view.rollback("inbox/m.txt", 2) == 4  # the source can still be brought back
    assert view.read("inbox/m.txt") == b"draft 2"


def test_move_onto_a_live_file_is_refused_and_changes_nothing(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("s.txt", "source")
    view.write("t.txt", "target")
    with pytest.raises(PathExistsError, match=r"destination: 't\.txt' exists") as error:
        view.move("s.txt", "t.txt")
    assert error.value.field == "destination"
    assert (view.read("s.txt"), view.read("t.txt")) == (b"source", b"target")
    assert len(view.history("s.txt")) == len(view.history("t.txt")) == 1


def test_move_onto_a_deleted_path_continues_its_history(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("t.txt", "old target")
    view.delete("t.txt")
    view.write("s.txt", "source")
    assert view.move("s.txt", "t.txt") == 3
    assert view.read("t.txt") == b"source"
    assert view.read("t.txt", version=1) == b"old target"


def test_move_to_another_owner_is_refused(storage: Storage) -> None:
    alice = storage.files(ALICE)
    storage.files(Principal("bob")).grant("", "alice", "write")
    alice.write("s.txt", "mine")
    with pytest.raises(InvalidRequestError) as error:
        alice.move("s.txt", "~bob/s.txt")
    assert error.value.field == "destination"
    assert alice.read("s.txt") == b"mine"
    with pytest.raises(FileNotFoundInStoreError):
        alice.read("~bob/s.txt")


def test_purge_removes_the_history_and_frees_its_bytes(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("keep.txt", "12345")
    for text in ("a" * 100, "b" * 200, "c" * 300):
        view.write("big.bin", text)
    view.delete("big.bin")
    assert view.usage() == 605 + 5 * OVER  # five versions, one of them the deletion
    assert view.purge("big.bin") == 600 + 4 * OVER
    assert view.usage() == 5 + OVER
    with pytest.raises(FileNotFoundInStoreError):
        view.history("big.bin")
    assert view.write("big.bin", "new") == 5  # version numbers never repeat
    assert view.usage() == 8 + 2 * OVER
    assert view.read("keep.txt") == b"12345"


def test_binary_content_round_trips_and_diffs_as_binary(storage: Storage) -> None:
    view = storage.files(ALICE)
    blob = bytes(range(256)) * 4
    view.write("b.bin", blob)
    view.write("b.bin", blob[::-1])
    assert view.read("b.bin", version=1) == blob
    assert view.read("b.bin") == blob[::-1]
    assert view.diff("b.bin", 1, 2) == "Binary versions 1 and 2 differ\n"
    assert view.write("empty", b"") == 1 and view.read("empty") == b""
