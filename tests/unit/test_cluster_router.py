import random
import threading

import pytest

from llmasos.cluster.router import (
    CacheAwareRouter,
    NoHealthyReplicaError,
    PrefixTree,
    ReplicaLoad,
    RoundRobinRouter,
    Router,
)
from llmasos.errors import InvalidRequestError

SYSTEM_A = "You are a careful accountant. Reconcile every ledger line by line. " * 4
SYSTEM_B = "You are a poet who writes only in haiku about the sea and the wind. " * 4


def idle(*ids: str) -> list[ReplicaLoad]:
    return [ReplicaLoad(replica_id, 0, 0) for replica_id in ids]


def test_a_shared_prefix_lands_on_the_replica_holding_it():
    router = CacheAwareRouter()
    router.record("b", SYSTEM_A + "User: first question")
    assert router.choose(SYSTEM_A + "User: second question", idle("a", "b", "c")) == "b"
    assert router.choose(SYSTEM_B + "User: hello", idle("a", "b", "c")) == "a"  # no match


def test_a_different_family_goes_to_the_least_loaded_replica():
    router = CacheAwareRouter()
    router.record("a", SYSTEM_A)
    loads = [ReplicaLoad("a", 3, 0), ReplicaLoad("b", 2, 0), ReplicaLoad("c", 1, 0)]
    assert router.choose(SYSTEM_A + "more", loads) == "a"
    assert router.choose(SYSTEM_B + "more", loads) == "c"
    # a prefix shorter than min_match of the text does not count
    assert router.choose(SYSTEM_A[:40] + SYSTEM_B * 2, loads) == "c"


def test_a_longer_prefix_beats_a_shorter_one():
    router = CacheAwareRouter()
    router.record("a", SYSTEM_A)
    router.record("b", SYSTEM_A + "User: plan the audit. Assistant: first, the invoices.")
    text = SYSTEM_A + "User: plan the audit. Assistant: first, the receipts."
    assert router.tree.match(text) == {"a": len(SYSTEM_A), "b": len(text) - len("receipts.")}
    assert router.choose(text, idle("a", "b")) == "b"


def test_equal_matches_go_to_the_less_loaded_then_the_smaller_tree():
    router = CacheAwareRouter()
    for replica_id in ("a", "b", "c"):
        router.record(replica_id, SYSTEM_A)
    router.record("a", SYSTEM_B)
    loads = [ReplicaLoad("a", 0, 0), ReplicaLoad("b", 1, 0), ReplicaLoad("c", 1, 0)]
    assert router.choose(SYSTEM_A + "x", loads) == "a"
    router.record("b", SYSTEM_B)
    router.record("b", "something else")
    assert router.choose(SYSTEM_A + "x", loads[1:]) == "c"  # same load, smaller tree


def test_imbalance_overrides_affinity():
    router = CacheAwareRouter(balance_abs=8, balance_rel=1.5)
    router.record("a", SYSTEM_A)
    text = SYSTEM_A + "next"
    imbalanced = [ReplicaLoad("a", 16, 4), ReplicaLoad("b", 2, 0)]
    assert router.choose(text, imbalanced) == "b"
    within_abs = [ReplicaLoad("a", 10, 0), ReplicaLoad("b", 2, 0)]  # 8 apart: not above 8
    assert router.choose(text, within_abs) == "a"
    within_rel = [ReplicaLoad("a", 30, 0), ReplicaLoad("b", 21, 0)]  # 30 <= 1.5 * 21
    assert router.choose(text, within_rel) == "a"


def test_priority_goes_where_it_waits_least():
    router = CacheAwareRouter()
    router.record("b", SYSTEM_A)
    loads = [ReplicaLoad("a", 12, 0), ReplicaLoad("b", 0, 2), ReplicaLoad("c", 14, 0)]
    assert router.choose(SYSTEM_A + "urgent", loads, priority=1) == "a"  # fewest queued
    # b holds the prefix and is the least loaded, but it has a queue
    assert router.choose(SYSTEM_A + "routine", loads) == "b"


def test_a_healthy_sticky_replica_is_chosen():
    router = CacheAwareRouter()
    router.record("a", SYSTEM_A)
    loads = [ReplicaLoad("a", 0, 0), ReplicaLoad("b", 9, 9)]
    assert router.choose(SYSTEM_A, loads, priority=5, sticky="b") == "b"
    down = [ReplicaLoad("a", 0, 0), ReplicaLoad("b", 0, 0, healthy=False)]
    assert router.choose(SYSTEM_A, down, sticky="b") == "a"
    assert router.choose(SYSTEM_A, loads, sticky="gone") == "a"


@pytest.mark.parametrize("make", [CacheAwareRouter, RoundRobinRouter])
def test_an_unhealthy_replica_is_never_chosen(make):
    router: Router = make()
    router.record("a", SYSTEM_A)
    loads = [ReplicaLoad("a", 0, 0, healthy=False), ReplicaLoad("b", 30, 30)]
    for priority in (0, 1):
        for _ in range(3):
            assert router.choose(SYSTEM_A, loads, priority=priority) == "b"
    dead = [ReplicaLoad("a", 0, 0, healthy=False)]
    for loads in (dead, []):
        with pytest.raises(NoHealthyReplicaError):
            router.choose(SYSTEM_A, loads)


def test_round_robin_cycles_over_healthy_replicas():
    router = RoundRobinRouter()
    loads = [ReplicaLoad("c", 0, 0, healthy=False), *idle("a", "b")]
    assert [router.choose("x", loads) for _ in range(4)] == ["a", "b", "a", "b"]
    loads = [*idle("c", "a", "b")]  # c recovers: it comes after b
    assert [router.choose("x", loads) for _ in range(4)] == ["c", "a", "b", "c"]
    assert router.choose("x", idle("a", "b")) == "a"  # c left: wrap around
    assert router.choose("x", idle("a", "b"), sticky="a") == "a"


def test_forget_drops_a_replicas_tree():
    router = CacheAwareRouter()
    router.record("a", SYSTEM_A)
    router.record("b", SYSTEM_A + "tail")
    router.forget("b")
    assert router.tree.match(SYSTEM_A + "tail") == {"a": len(SYSTEM_A)}
    assert router.tree.chars("b") == 0
    router.forget("a")
    assert router.tree.match(SYSTEM_A) == {}
    assert router.choose(SYSTEM_A, [ReplicaLoad("a", 2, 0), ReplicaLoad("b", 1, 0)]) == "b"


def test_eviction_bounds_each_replica_and_keeps_the_recently_used():
    tree = PrefixTree(max_chars=30)
    for text in ("a" * 10, "b" * 10, "c" * 10):
        tree.insert("r", text)
    tree.insert("other", "b" * 10)
    tree.insert("r", "a" * 10)  # a is used again: b is now the oldest
    tree.insert("r", "d" * 10)
    assert tree.chars("r") == 30
    assert tree.match("b" * 10) == {"other": 10}  # evicted for r, kept for the other replica
    assert [tree.match(c * 10) for c in "acd"] == [{"r": 10}] * 3


def test_eviction_takes_leaves_before_the_prefix_they_share():
    tree = PrefixTree(max_chars=24)
    tree.insert("r", "system-prompt:" + "one")  # 17 characters
    tree.insert("r", "system-prompt:" + "two")  # + 3 on a new leaf: 20
    tree.insert("r", "system-prompt:" + "four!!")  # + 6: 26 > 24, so "one" goes
    assert tree.chars("r") == 23
    assert tree.match("system-prompt:one") == {"r": 14}
    assert tree.match("system-prompt:two") == {"r": 17}
    assert tree.match("system-prompt:four!!") == {"r": 20}


def test_a_text_over_the_budget_keeps_at_most_the_budget():
    tree = PrefixTree(max_chars=10)
    tree.insert("r", "abc")
    tree.insert("r", "abcdefghijklmnop")
    assert tree.chars("r") <= 10
    assert tree.match("abcdefghijklmnop").get("r", 0) <= 10


def brute_force_match(held: dict[str, list[str]], text: str) -> dict[str, int]:
    def common(a: str, b: str) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    best = {replica: max(common(t, text) for t in texts) for replica, texts in held.items()}
    return {replica: n for replica, n in best.items() if n}


def random_text(rng: random.Random) -> str:
    stem = rng.choice(["", "sys-A:", "sys-B:", "sys-A:turn1;", "sys-A:turn1;turn2;"])
    return stem + "".join(rng.choice("xyz;") for _ in range(rng.randrange(0, 8)))


def test_match_agrees_with_a_brute_force_scan():
    rng = random.Random(15)
    tree = PrefixTree(max_chars=1 << 20)
    held: dict[str, list[str]] = {}
    for _ in range(600):
        replica, text = rng.choice("pqrs"), random_text(rng)
        tree.insert(replica, text)
        held.setdefault(replica, []).append(text)
        probe = random_text(rng)
        assert tree.match(probe) == brute_force_match(held, probe)
    for replica, texts in held.items():  # one character per distinct prefix
        assert tree.chars(replica) == len({t[:k] for t in texts for k in range(1, len(t) + 1)})


def test_under_eviction_the_latest_text_stays_whole_and_the_budget_holds():
    rng = random.Random(16)
    tree = PrefixTree(max_chars=40)
    for _ in range(600):
        replica, text = rng.choice("pq"), random_text(rng)
        tree.insert(replica, text)
        assert tree.chars(replica) <= 40
        if text:
            assert tree.match(text)[replica] == len(text)


def test_concurrent_choose_and_record_keep_the_tree_consistent():
    router = CacheAwareRouter(max_chars_per_replica=200)
    loads = idle("a", "b", "c")
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(300):
                text = random_text(rng) * 3
                router.record(router.choose(text, loads), text)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert all(router.tree.chars(replica) <= 200 for replica in "abc")


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: CacheAwareRouter(min_match=1.5), "min_match"),
        (lambda: CacheAwareRouter(balance_abs=-1), "balance_abs"),
        (lambda: CacheAwareRouter(balance_rel=0.5), "balance_rel"),
        (lambda: CacheAwareRouter(max_chars_per_replica=0), "max_chars"),
    ],
)
def test_bad_settings_name_the_field(make, field):
    with pytest.raises(InvalidRequestError) as raised:
        make()
    assert raised.value.field == field
