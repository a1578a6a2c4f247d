"""Grants: nobody reads or writes another namespace without one; an owner rules its agents'."""

from __future__ import annotations

import pytest

from llmasos.errors import FileNotFoundInStoreError, InvalidRequestError, PermissionDeniedError
from llmasos.storage.file_store import charged
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage

ALICE, BOB, CAROL = Principal("alice"), Principal("bob"), Principal("carol")
HELPER = Principal("alice", "helper")


@pytest.fixture
def shared(storage: Storage) -> Storage:
    """alice has notes/a.txt, notes/sub/b.txt and notes2/x.txt."""
    alice = storage.files(ALICE)
    alice.write("notes/a.txt", "alice's note")
    alice.write("notes/sub/b.txt", "deeper")
    alice.write("notes2/x.txt", "not in notes")
    return storage


def test_without_a_grant_nothing_of_another_namespace_is_reachable(shared: Storage) -> None:
    bob = shared.files(BOB)
    for call in (
        lambda: bob.read("~alice/notes/a.txt"),
        lambda: bob.stat("~alice/notes/a.txt"),
        lambda: bob.history("~alice/notes/a.txt"),
        lambda: bob.diff("~alice/notes/a.txt", 1),
        lambda: bob.list("~alice/notes"),
        lambda: bob.write("~alice/notes/a.txt", "bob was here"),
        lambda: bob.delete("~alice/notes/a.txt"),
        lambda: bob.rollback("~alice/notes/a.txt", 1),
        lambda: bob.purge("~alice/notes/a.txt"),
        lambda: bob.read("~alice/never.txt"),  # no hint whether a path exists
    ):
        with pytest.raises(PermissionDeniedError):
            call()
    assert shared.files(ALICE).read("notes/a.txt") == b"alice's note"
    assert len(shared.files(ALICE).history("notes/a.txt")) == 1


def test_a_read_grant_lets_read_and_list_but_not_write(shared: Storage) -> None:
    alice, bob = shared.files(ALICE), shared.files(BOB)
    grant = alice.grant("notes", "bob", "read")
    assert (grant.namespace, grant.prefix, grant.grantee, grant.mode.value) == (
        "alice", "notes", "bob", "read",
    )  # fmt: skip
    assert bob.read("~alice/notes/a.txt") == b"alice's note"
    assert bob.read("~alice/notes/sub/b.txt") == b"deeper"
    assert bob.stat("~alice/notes/a.txt").path == "~alice/notes/a.txt"
    assert [f.path for f in bob.list("~alice/notes")] == [
        "~alice/notes/a.txt", "~alice/notes/sub/b.txt",
    ]  # fmt: skip
    assert [f.path for f in bob.list("~alice")] == [
        "~alice/notes/a.txt",
        "~alice/notes/sub/b.txt",
    ]  # fmt: skip  (notes2/ is not shown)
    with pytest.raises(PermissionDeniedError):
        bob.write("~alice/notes/a.txt", "bob was here")
    with pytest.raises(PermissionDeniedError):
        bob.write("~alice/notes/new.txt", "bob was here")
    with pytest.raises(PermissionDeniedError):
        bob.delete("~alice/notes/a.txt")
    with pytest.raises(PermissionDeniedError):
        shared.files(CAROL).read("~alice/notes/a.txt")  # the grant was bob's
    assert alice.read("notes/a.txt") == b"alice's note"


def test_a_grant_on_a_folder_does_not_cover_a_sibling_with_the_same_prefix(
    shared: Storage,
) -> None:
    shared.files(ALICE).grant("notes", "bob", "write")
    bob = shared.files(BOB)
    with pytest.raises(PermissionDeniedError):
        bob.read("~alice/notes2/x.txt")
    with pytest.raises(PermissionDeniedError):
        bob.write("~alice/notes2/y.txt", "no")
    with pytest.raises(PermissionDeniedError):
        bob.write("~alice/notesX", "no")
    assert bob.write("~alice/notes/sub/c.txt", "inside the grant") == 1


def test_a_write_grant_allows_writing_and_revoke_takes_it_back(shared: Storage) -> None:
    alice, bob = shared.files(ALICE), shared.files(BOB)
    alice.grant("notes", "bob", "write")
    assert bob.write("~alice/notes/a.txt", "edited by bob") == 2
    assert bob.write("~alice/notes/bob.txt", "new from bob") == 1
    assert alice.read("notes/a.txt") == b"edited by bob"
    assert alice.history("notes/a.txt")[-1].author == "bob"
    written = ["alice's note", "deeper", "not in notes", "edited by bob", "new from bob"]
    assert alice.usage() == sum(charged(len(text)) for text in written)  # history counts
    assert bob.usage() == 0  # what bob wrote is counted to alice, the owner
    assert [(g.prefix, g.grantee, g.mode.value) for g in alice.grants()] == [
        ("notes", "bob", "write"),
    ]
    assert alice.revoke("notes", "bob") is True
    assert alice.revoke("notes", "bob") is False
    assert alice.grants() == []
    with pytest.raises(PermissionDeniedError):
        bob.read("~alice/notes/a.txt")
    with pytest.raises(PermissionDeniedError):
        bob.write("~alice/notes/a.txt", "again")
    with pytest.raises(PermissionDeniedError):
        bob.list("~alice/notes")


def test_granting_again_changes_the_mode(shared: Storage) -> None:
    alice, bob = shared.files(ALICE), shared.files(BOB)
    alice.grant("notes", "bob", "write")
    alice.grant("notes", "bob", "read")
    assert [g.mode.value for g in alice.grants("notes")] == ["read"]
    with pytest.raises(PermissionDeniedError):
        bob.write("~alice/notes/a.txt", "downgraded")


def test_an_agent_has_its_own_namespace_and_its_owner_rules_it(shared: Storage) -> None:
    alice, helper = shared.files(ALICE), shared.files(HELPER)
    assert helper.write("scratch.txt", "the helper's own") == 1
    assert helper.read("scratch.txt") == b"the helper's own"
    with pytest.raises(FileNotFoundInStoreError):
        alice.read("scratch.txt")  # not in alice's own namespace
    assert alice.read("~alice:helper/scratch.txt") == b"the helper's own"
    assert alice.write("~alice:helper/from-alice.txt", "hi") == 1
    assert [f.path for f in alice.list("~alice:helper")] == [
        "~alice:helper/from-alice.txt", "~alice:helper/scratch.txt",
    ]  # fmt: skip
    with pytest.raises(PermissionDeniedError):
        helper.read("~alice/notes/a.txt")  # the agent is not its owner
    with pytest.raises(PermissionDeniedError):
        helper.list("~alice")
    with pytest.raises(PermissionDeniedError):
        shared.files(BOB).read("~alice:helper/scratch.txt")
    with pytest.raises(PermissionDeniedError):
        shared.files(Principal("alice", "other")).read("~alice:helper/scratch.txt")
    alice.grant("notes", "alice:helper", "read")
    assert helper.read("~alice/notes/a.txt") == b"alice's note"
    with pytest.raises(PermissionDeniedError):
        helper.write("~alice/notes/a.txt", "no")
    with pytest.raises(PermissionDeniedError):
        shared.files(Principal("alice", "other")).read("~alice/notes/a.txt")


def test_a_grant_to_an_owner_covers_its_agents(shared: Storage) -> None:
    shared.files(ALICE).grant("notes", "bob", "read")
    assert shared.files(Principal("bob", "agent")).read("~alice/notes/a.txt") == b"alice's note"


def test_only_the_namespace_owner_may_grant(shared: Storage) -> None:
    alice, bob, helper = shared.files(ALICE), shared.files(BOB), shared.files(HELPER)
    alice.grant("notes", "bob", "write")
    with pytest.raises(PermissionDeniedError):
        bob.grant("~alice/notes", "carol", "read")  # a write grant is not ownership
    with pytest.raises(PermissionDeniedError):
        bob.revoke("~alice/notes", "bob")
    with pytest.raises(PermissionDeniedError):
        bob.grants("~alice")
    with pytest.raises(PermissionDeniedError):
        helper.grant("~alice/notes", "carol", "read")  # nor is being alice's agent
    with pytest.raises(PermissionDeniedError):
        shared.files(CAROL).read("~alice/notes/a.txt")
    helper.write("mine.txt", "helper's")
    helper.grant("", "carol", "read")  # an agent may share its own namespace
    assert shared.files(CAROL).read("~alice:helper/mine.txt") == b"helper's"
    alice.grant("~alice:helper", "bob", "read")  # and so may its owner
    assert bob.read("~alice:helper/mine.txt") == b"helper's"


def test_a_grant_names_a_valid_mode_and_principal(shared: Storage) -> None:
    alice = shared.files(ALICE)
    with pytest.raises(InvalidRequestError) as error:
        alice.grant("notes", "bob", "admin")
    assert error.value.field == "mode"
    with pytest.raises(InvalidRequestError) as error:
        alice.grant("notes", "not a name", "read")
    assert error.value.field == "to"
    assert alice.grants() == []
