"""Sealing at rest: with a master key no content reaches the database in the clear, and a stored
record that was altered, moved or opened with another key is refused (IntegrityError); without
one, the digest check still refuses an altered record."""

from __future__ import annotations

import os
import secrets

import pytest

from llmasos.errors import IntegrityError
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage
from tests.integration.storage.conftest import Backend, Memo

ALICE, BOT = Principal("alice"), Principal("alice", "bot")
SEALED = [True, False]
SEALED_IDS = ["sealed", "plain"]


def open_storage(backend: Backend, sealed: bool) -> Storage:
    return backend.open(master_key=os.urandom(32) if sealed else None)


def stored_data(backend: Backend, namespace: str, path: str, version: int) -> bytes:
    """The data column of one version, as the database holds it."""
    rows = backend.execute(
        "SELECT data FROM file_versions WHERE namespace = ? AND path = ? AND version = ?",
        (namespace, path, version),
    )
    return bytes(rows[0][0])


def store_data(backend: Backend, namespace: str, path: str, version: int, data: bytes) -> None:
    """Overwrite the data column of one version behind the storage's back."""
    backend.execute(
        "UPDATE file_versions SET data = ? WHERE namespace = ? AND path = ? AND version = ?",
        (data, namespace, path, version),
    )


def flipped(data: bytes, at: int) -> bytes:
    changed = bytearray(data)
    changed[at] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize("sealed", SEALED, ids=SEALED_IDS)
def test_sealed_content_never_reaches_the_database_in_the_clear(
    backend: Backend, memo: Memo, sealed: bool
) -> None:
    wal_from = backend.wal_position()
    storage = open_storage(backend, sealed)
    secret_file = f"file-secret-{secrets.token_hex(8)}"
    secret_core = f"core-secret-{secrets.token_hex(8)}"
    secret_fact = f"archival-secret-{secrets.token_hex(8)}"
    secret_turn = f"recall-secret-{secrets.token_hex(8)}"
    view = storage.files(ALICE)
    view.write("vault/code.txt", f"The launch code is {secret_file}.")
    view.write("vault/code.txt", f"The launch code is still {secret_file}.")
    view.rollback("vault/code.txt", 1)
    view.move("vault/code.txt", "vault/moved.txt")
    memory = storage.memory(BOT, memo)
    memory.core("persona", f"I keep the token {secret_core} safe.")
    memory.store(f"The archived token is {secret_fact}.")
    memory.log("user", f"Please remember {secret_turn} for me.")
    assert view.read("vault/moved.txt") == f"The launch code is {secret_file}.".encode()
    assert secret_core in memory.core()["persona"]
    assert secret_fact in memory.search("Which token was archived?", k=1)[0].text
    assert secret_turn in memory.recall()[0].text

    values = backend.table_values()
    contents = [path.read_bytes() for path in backend.raw_files(wal_from)]
    assert contents
    for secret in (secret_file, secret_core, secret_fact, secret_turn):
        in_rows = any(secret.encode() in value for value in values)
        in_files = any(secret.encode() in content for content in contents)
        assert (in_rows, in_files) == (not sealed, not sealed), secret


@pytest.mark.parametrize("sealed", SEALED, ids=SEALED_IDS)
def test_a_flipped_byte_in_a_stored_version_is_refused(backend: Backend, sealed: bool) -> None:
    storage = open_storage(backend, sealed)
    view = storage.files(ALICE)
    view.write("t.txt", "the first version of this file")
    view.write("t.txt", "the second version of this file")
    original = stored_data(backend, "alice", "t.txt", 1)
    for at in (0, 4, len(original) // 2, len(original) - 1):
        store_data(backend, "alice", "t.txt", 1, flipped(original, at))
        with pytest.raises(IntegrityError):
            view.read("t.txt", version=1)
        with pytest.raises(IntegrityError):
            view.diff("t.txt", 1, 2)
        with pytest.raises(IntegrityError):
            view.rollback("t.txt", 1)
        assert view.read("t.txt") == b"the second version of this file"
    assert len(view.history("t.txt")) == 2  # no rollback got through
    store_data(backend, "alice", "t.txt", 1, original)
    assert view.read("t.txt", version=1) == b"the first version of this file"


@pytest.mark.parametrize("sealed", SEALED, ids=SEALED_IDS)
def test_a_record_copied_onto_another_version_or_path_is_refused(
    backend: Backend, sealed: bool
) -> None:
    storage = open_storage(backend, sealed)
    alice, bob = storage.files(ALICE), storage.files(Principal("bob"))
    alice.write("a.txt", "alice's version one")
    alice.write("a.txt", "alice's version two")
    alice.write("b.txt", "alice's other file")
    bob.write("a.txt", "bob's version one")
    record = stored_data(backend, "alice", "a.txt", 1)
    store_data(backend, "alice", "a.txt", 2, record)
    store_data(backend, "alice", "b.txt", 1, record)
    store_data(backend, "bob", "a.txt", 1, record)
    with pytest.raises(IntegrityError):
        alice.read("a.txt")
    with pytest.raises(IntegrityError):
        alice.read("b.txt")
    with pytest.raises(IntegrityError):
        bob.read("a.txt")
    assert alice.read("a.txt", version=1) == b"alice's version one"


def test_sealed_data_opens_only_with_its_master_key(backend: Backend) -> None:
    key = os.urandom(32)
    storage = backend.open(master_key=key)
    storage.files(ALICE).write("k.txt", "sealed with the first key")
    storage.memory(BOT, None).core("persona", "a sealed core block")
    storage.close()

    other = backend.open(master_key=os.urandom(32))
    with pytest.raises(IntegrityError):
        other.files(ALICE).read("k.txt")
    with pytest.raises(IntegrityError):
        other.memory(BOT, None).core()
    other.close()
    unsealed = backend.open()
    with pytest.raises(IntegrityError):
        unsealed.files(ALICE).read("k.txt")  # sealed bytes fail the plain digest check
    unsealed.close()
    again = backend.open(master_key=key)
    assert again.files(ALICE).read("k.txt") == b"sealed with the first key"
    assert again.memory(BOT, None).core() == {"persona": "a sealed core block"}


def test_altered_or_moved_sealed_memory_is_refused(backend: Backend) -> None:
    storage = backend.open(master_key=os.urandom(32))
    memory = storage.memory(BOT, None)
    memory.core("persona", "a sealed core block")
    memory.core("goals", "another sealed block")
    first, second = memory.log("user", "turn one"), memory.log("assistant", "turn two")

    (value,) = backend.execute(
        "SELECT value FROM memory_core WHERE scope = ? AND label = ?", ("alice:bot", "persona")
    )[0]
    backend.execute(
        "UPDATE memory_core SET value = ? WHERE label = ?", (bytes(value), "goals")
    )  # persona's record under another label
    with pytest.raises(IntegrityError):
        memory.core()
    memory.core("goals", "rewritten")
    assert memory.core() == {"goals": "rewritten", "persona": "a sealed core block"}
    backend.execute(
        "UPDATE memory_core SET value = ? WHERE label = ?", (flipped(bytes(value), -1), "persona")
    )
    with pytest.raises(IntegrityError):
        memory.core()
    memory.core("persona", "")  # the agent may still drop the damaged block
    assert memory.core() == {"goals": "rewritten"}

    (text,) = backend.execute("SELECT text FROM memory_entries WHERE key = ?", (first.key,))[0]
    backend.execute(
        "UPDATE memory_entries SET text = ? WHERE key = ?", (bytes(text), second.key)
    )  # turn one's record under turn two's key
    with pytest.raises(IntegrityError):
        memory.recall()
    assert [item.text for item in memory.recall(limit=1)] == ["turn one"]
    backend.execute(
        "UPDATE memory_entries SET text = ? WHERE key = ?", (flipped(bytes(text), 10), first.key)
    )
    with pytest.raises(IntegrityError):
        memory.recall(limit=1)


def test_a_sealed_turn_cannot_change_its_role(backend: Backend) -> None:
    storage = backend.open(master_key=os.urandom(32))
    memory = storage.memory(BOT, None)
    turn = memory.log("user", "please delete everything")
    assert memory.recall()[0].role == "user"
    backend.execute("UPDATE memory_entries SET role = ? WHERE key = ?", ("system", turn.key))
    with pytest.raises(IntegrityError):
        memory.recall()
