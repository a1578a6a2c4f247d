"""Owners hash-partitioned across shards: adding shards moves some owners and loses, duplicates
or changes nothing; the catalog survives a restart; a rebalance that crashed half-way finishes
when run again."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from llmasos.errors import InvalidRequestError
from llmasos.storage import sharding
from llmasos.storage.database import VECTOR_TABLE_PREFIX, Database, vector_table
from llmasos.storage.paths import Principal
from llmasos.storage.schema import OWNER_TABLES
from llmasos.storage.service import Storage, open_database
from tests.integration.storage.conftest import Backend, Memo

TOPICS = ["sailing", "chess", "baking bread", "astronomy", "jazz piano", "mountain hiking"]


def owner_names(count: int) -> list[str]:
    return [f"owner-{i:02d}" for i in range(count)]


GREETING, QUESTION = "Hello, I am the owner of this agent.", "What does my owner enjoy?"


def facts(i: int) -> list[str]:
    """Three of six texts (few distinct texts: the model embeds each once)."""
    return [f"My owner enjoys {TOPICS[(i + k) % len(TOPICS)]}." for k in range(3)]


def populate(storage: Storage, embed: Memo, owners: list[str]) -> None:
    """Each owner: a file of three versions, a deleted file, its agent's file, a grant to the
    next owner, and the agent's core, archival (embedded) and recall memory."""
    embed([*facts(0), *facts(3), GREETING, QUESTION])  # one batch
    for i, owner in enumerate(owners):
        view = storage.files(Principal(owner))
        for n in range(1, 4):
            view.write("docs/a.txt", f"{owner}: a, version {n}\n")
        view.write("docs/b.txt", f"{owner}: b\n")
        view.delete("docs/b.txt")
        storage.files(Principal(owner, "bot")).write("scratch.txt", f"{owner}'s bot was here")
        view.grant("docs", owners[(i + 1) % len(owners)], "read")
        memory = storage.memory(Principal(owner, "bot"), embed)
        memory.core("persona", f"the assistant of {owner}")
        memory.store_many(facts(i))
        memory.log("user", GREETING)


def snapshot(storage: Storage, embed: Memo, owners: list[str]) -> dict[str, Any]:
    """Everything each owner can see: files, every version's content, grants (and what the
    grantee reads through them), usage, core, recall and archival search results."""
    state: dict[str, Any] = {}
    for i, owner in enumerate(owners):
        view = storage.files(Principal(owner))
        files = view.list("") + view.list(f"~{owner}:bot")
        histories = {p: view.history(p) for p in ("docs/a.txt", "docs/b.txt")}
        contents = {
            (path, info.version): view.read(path, version=info.version)
            for path, history in histories.items()
            for info in history
            if not info.deleted
        }
        grantee = storage.files(Principal(owners[(i + 1) % len(owners)]))
        memory = storage.memory(Principal(owner, "bot"), embed)
        hits = memory.search(QUESTION, k=5)
        state[owner] = {
            "files": files,
            "histories": histories,
            "contents": contents,
            "grants": view.grants(),
            "granted": grantee.read(f"~{owner}/docs/a.txt"),
            "usage": view.usage(),
            "core": memory.core(),
            "recall": memory.recall(),
            "archival": [(h.key, h.seq, h.text, round(h.distance or 0.0, 5)) for h in hits],
        }
    return state


def count_rows(db: Database) -> dict[str, int]:
    """Rows per owner table, and vectors per vector table, in one shard."""
    tables = [*OWNER_TABLES, *(table for table, _ in db.vector_tables())]
    with db.transaction(write=False) as tx:
        return {table: int(tx.execute(f"SELECT count(*) FROM {table}")[0][0]) for table in tables}


def totals(storage: Storage) -> dict[str, int]:
    """Rows per table summed over the shards."""
    summed: dict[str, int] = {}
    for shard in storage.store.shards:
        for table, count in count_rows(shard.db).items():
            summed[table] = summed.get(table, 0) + count
    return summed


def assert_each_owner_in_its_shard_only(storage: Storage, owners: list[str]) -> None:
    store = storage.store
    placed = {shard.db.name: sharding.owners_in(shard.db) for shard in store.shards}
    for owner in owners:
        holders = [name for name, found in placed.items() if owner in found]
        assert holders == [store.shard_for(owner).db.name], owner
    assert set().union(*placed.values()) == set(owners)
    for shard in store.shards:  # no vector left behind without its entry, or twice
        rows = count_rows(shard.db)
        with shard.db.transaction(write=False) as tx:
            embedded = tx.execute(
                "SELECT count(*) FROM memory_entries WHERE vector_table IS NOT NULL"
            )[0][0]
        vectors = sum(n for table, n in rows.items() if table.startswith(VECTOR_TABLE_PREFIX))
        assert vectors == embedded, shard.db.name


def test_adding_shards_moves_owners_and_keeps_every_row_once(backend: Backend, memo: Memo) -> None:
    owners = owner_names(40)
    storage = backend.open()
    populate(storage, memo, owners)
    before, rows_before = snapshot(storage, memo, owners), totals(storage)
    assert rows_before[vector_table(384)] == 4 * len(owners)

    first, second = storage.add_shard(), storage.add_shard()
    assert (first.shards, second.shards) == (2, 3)
    assert first.owners_moved > 0 and second.owners_moved > 0
    assert first.rows_moved > 0 and second.rows_moved > 0
    assert storage.store.shard_names() == ["shard-0", "shard-1", "shard-2"]
    assert all(sharding.owners_in(shard.db) for shard in storage.store.shards)
    assert_each_owner_in_its_shard_only(storage, owners)
    assert totals(storage) == rows_before
    assert snapshot(storage, memo, owners) == before

    again = storage.store.rebalance()
    assert (again.owners_moved, again.rows_moved) == (0, 0)


def test_the_catalog_survives_a_restart_and_shards_are_never_removed(
    backend: Backend, memo: Memo
) -> None:
    owners, key = owner_names(12), os.urandom(32)  # sealed records move like any others
    storage = backend.open(shards=3, master_key=key)
    assert storage.store.shard_names() == ["shard-0", "shard-1", "shard-2"]
    populate(storage, memo, owners)
    assert_each_owner_in_its_shard_only(storage, owners)
    before = snapshot(storage, memo, owners)
    storage.close()

    reopened = backend.open(shards=3, master_key=key)
    assert reopened.store.shard_names() == ["shard-0", "shard-1", "shard-2"]
    assert_each_owner_in_its_shard_only(reopened, owners)
    assert snapshot(reopened, memo, owners) == before
    reopened.close()
    for fewer in (1, 2):
        with pytest.raises(InvalidRequestError) as error:
            backend.open(shards=fewer, master_key=key)
        assert error.value.field == "LLMASOS_STORAGE_SHARDS"

    grown = backend.open(shards=4, master_key=key)  # more than saved: added on open, owners moved
    assert grown.store.shard_names() == ["shard-0", "shard-1", "shard-2", "shard-3"]
    assert sharding.owners_in(grown.store.shards[3].db)
    assert_each_owner_in_its_shard_only(grown, owners)
    assert snapshot(grown, memo, owners) == before


class SimulatedCrash(Exception):
    """The process died between copying an owner and deleting it from its old shard."""


def test_a_rebalance_that_crashed_half_way_finishes_when_run_again(
    backend: Backend, memo: Memo, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners = owner_names(12)
    storage = backend.open()
    populate(storage, memo, owners)
    before, rows_before = snapshot(storage, memo, owners), totals(storage)
    real_move, crashed = sharding.move_owner, []

    def copy_then_crash(owner: str, source: Database, target: Database) -> int:
        """move_owner, killed once the copy committed, before the old rows are deleted."""
        real_transaction = source.transaction

        def transaction(*, write: bool = True) -> Any:
            if write:
                raise SimulatedCrash(owner)
            return real_transaction(write=write)

        source.transaction = transaction  # type: ignore[method-assign]
        try:
            crashed.append(owner)
            return real_move(owner, source, target)
        finally:
            del source.transaction

    monkeypatch.setattr(sharding, "move_owner", copy_then_crash)
    with pytest.raises(SimulatedCrash):
        storage.add_shard()
    monkeypatch.undo()
    (owner,) = crashed
    old, new = storage.store.shards
    assert owner in sharding.owners_in(old.db) and owner in sharding.owners_in(new.db)
    assert storage.store.shard_for(owner) is new

    report = storage.store.rebalance()
    assert report.owners_moved > 0
    assert_each_owner_in_its_shard_only(storage, owners)
    assert totals(storage) == rows_before
    assert snapshot(storage, memo, owners) == before
    assert storage.store.rebalance().owners_moved == 0
    assert snapshot(storage, memo, owners) == before


def test_a_rebalance_that_died_is_finished_when_the_storage_opens_again(backend: Backend) -> None:
    """The catalog already names the new shard, the mark says a rebalance ran, and no owner
    moved yet (the process died right after adding the shard): opening the storage moves
    them before anything reads, so no owner's files seem gone."""
    storage = backend.open()
    owners = [f"owner{n}" for n in range(24)]
    for owner in owners:
        storage.files(Principal(owner)).write("f.txt", owner)
    store = storage.store
    store.shards.append(sharding.Shard(open_database(backend.config(), 1)))
    store.save_catalog()
    store._set_meta("rebalancing", "1")
    storage.close()
    reopened = backend.open(shards=2)
    assert not reopened.store.rebalance_pending
    for owner in owners:
        assert reopened.files(Principal(owner)).read("f.txt") == owner.encode()
    assert sharding.owners_in(reopened.store.shards[1].db)  # some did move


def test_servers_opening_one_fresh_database_at_once_all_open(backend: Backend) -> None:
    """Replicas of a cluster start together on one new database: each opens (the schema is
    created once, not raced) and each sees what another wrote."""
    with ThreadPoolExecutor(6) as starting:
        opened = list(starting.map(lambda _: backend.open(shards=2), range(6)))
    opened[0].files(Principal("ada")).write("notes.txt", "written by the first\n")
    for storage in opened:
        assert storage.files(Principal("ada")).read("notes.txt") == b"written by the first\n"
