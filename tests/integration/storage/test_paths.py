"""Paths are checked before anything is stored: each bad one is refused naming its field."""

from __future__ import annotations

import re

import pytest

from llmasos.errors import InvalidRequestError
from llmasos.storage.paths import MAX_PATH_CHARS, MAX_SEGMENT_CHARS, PATH_REGEX, Principal
from llmasos.storage.service import Storage

ALICE = Principal("alice")
BAD_PATHS = {
    "dot-dot": "..",
    "dot-dot-inside": "a/../b",
    "dot": "./a",
    "empty": "",
    "root": "/",
    "empty-segment": "a//b",
    "nul": "a\x00b",
    "newline": "a\nb",
    "tab": "a\tb",
    "delete": "a\x7fb",
    "too-long": "a/" * (MAX_PATH_CHARS // 2) + "b",
    "long-segment": "a/" + "s" * (MAX_SEGMENT_CHARS + 1),
    "bad-namespace": "~not a name/x.txt",
    "empty-namespace": "~/x.txt",
    "namespace-only": "~bob",
    "namespace-dot-dot": "~bob/../x.txt",
    "not-a-string": b"a.txt",
}


def test_a_bad_path_is_refused_naming_the_field(storage: Storage) -> None:
    view = storage.files(ALICE)
    view.write("ok.txt", "ok")
    for case, bad in BAD_PATHS.items():
        for field, call in (
            ("path", lambda bad=bad: view.write(bad, "x")),
            ("path", lambda bad=bad: view.read(bad)),
            ("path", lambda bad=bad: view.delete(bad)),
            ("path", lambda bad=bad: view.history(bad)),
            ("source", lambda bad=bad: view.move(bad, "elsewhere.txt")),
            ("destination", lambda bad=bad: view.move("ok.txt", bad)),
        ):
            with pytest.raises(InvalidRequestError) as error:
                call()
            assert error.value.field == field, case
            assert str(error.value).startswith(f"{field}: "), case
    assert [f.path for f in view.list("")] == ["ok.txt"]
    assert view.read("ok.txt") == b"ok"


def test_a_bad_prefix_is_refused_naming_the_field(storage: Storage) -> None:
    view = storage.files(ALICE)
    for bad in ("..", "a/../b", "a\nb", "~/x", "x" * (MAX_PATH_CHARS + 1)):
        for call in (lambda bad=bad: view.list(bad), lambda bad=bad: view.grant(bad, "bob")):
            with pytest.raises(InvalidRequestError) as error:
                call()
            assert error.value.field == "prefix", repr(bad)
    assert view.grants() == []


def test_a_namespace_with_an_empty_agent_name_is_not_a_namespace_of_its_own(
    storage: Storage,
) -> None:
    """ "~alice:/x.txt" names no principal (PATH_REGEX, the API's pattern, refuses it): it must be
    refused, or be alice's own namespace; never a third namespace "alice:"."""
    view = storage.files(ALICE)
    assert re.match(PATH_REGEX, "~alice:/x.txt") is None
    try:
        view.write("~alice:/x.txt", "where does this go?")
    except InvalidRequestError as error:
        assert error.field == "path"
        assert view.list("") == []
    else:
        assert view.read("x.txt") == b"where does this go?"


def test_the_longest_allowed_path_is_stored(storage: Storage) -> None:
    view = storage.files(ALICE)
    segment = "s" * MAX_SEGMENT_CHARS
    path = "/".join(["f" * (MAX_SEGMENT_CHARS - 1), segment, segment, segment, "x"])
    assert len(path) == MAX_PATH_CHARS
    assert view.write(path, "deep") == 1
    assert view.read(path) == b"deep"
    assert [f.path for f in view.list("f" * (MAX_SEGMENT_CHARS - 1))] == [path]
    with pytest.raises(InvalidRequestError):
        view.write(path + "x", "one character too many")


def test_names_with_unicode_and_punctuation_are_paths_like_any_other(storage: Storage) -> None:
    view = storage.files(ALICE)
    for path in ("café/ünïcode.txt", "with space.txt", "a.b-c_d@e", "...x", "x..", "emoji-🙂"):
        assert view.write(path, path) == 1
        assert view.read(path) == path.encode()


@pytest.mark.parametrize("path", ["/~bob/x", "//~bob/x", "~alice//~bob/x", "~alice/~bob/x"])
def test_no_file_of_ones_own_is_named_like_another_namespace(storage: Storage, path: str) -> None:
    """A listed name must lead back to the same file: a path whose first segment starts with
    '~' would read as another namespace, so it is refused (and the API's pattern says so)."""
    with pytest.raises(InvalidRequestError, match="first segment may not start with '~'"):
        storage.files(ALICE).write(path, "x")
    assert re.match(PATH_REGEX, path) is None
