import random

from llmasos.kernel.prefix_cache import PrefixMatch, RadixPrefixCache


def test_longest_prefix_and_every_slot_holding_it():
    cache = RadixPrefixCache()
    cache.insert(0, [1, 2, 3, 4])
    cache.insert(1, [1, 2, 3, 9, 9])
    cache.insert(2, [7])
    assert cache.match_prefix([1, 2, 3, 4, 5]) == PrefixMatch(4, frozenset({0}))
    match = cache.match_prefix([1, 2, 3, 8])
    assert (match.length, match.slots) == (3, frozenset({0, 1}))
    assert cache.match_prefix([5, 1]).length == 0


def test_extend_truncate_and_remove_keep_the_paths_right():
    cache = RadixPrefixCache()
    cache.insert(0, [1, 2])
    cache.extend(0, [3, 4])
    cache.insert(1, [1, 2, 3])
    cache.extend(1, [5])
    assert cache.tokens(0) == [1, 2, 3, 4]
    assert cache.tokens(1) == [1, 2, 3, 5]
    cache.truncate(0, 2)
    assert cache.tokens(0) == [1, 2]
    assert cache.match_prefix([1, 2, 3, 4]).slots == frozenset({1})
    cache.remove(1)
    assert cache.match_prefix([1, 2, 3]).length == 2
    cache.remove(0)
    assert cache.match_prefix([1]).length == 0
    assert 0 not in cache and cache.tokens(0) == []


def test_random_operations_agree_with_a_brute_force_scan():
    rng = random.Random(7)
    cache = RadixPrefixCache()
    held: dict[int, list[int]] = {}
    for _ in range(2000):
        slot = rng.randrange(8)
        action = rng.random()
        if action < 0.3:
            held[slot] = [rng.randrange(4) for _ in range(rng.randrange(12))]
            cache.insert(slot, held[slot])
        elif action < 0.6 and slot in held:
            more = [rng.randrange(4) for _ in range(rng.randrange(1, 4))]
            held[slot] += more
            cache.extend(slot, more)
        elif action < 0.75 and slot in held:
            held[slot] = held[slot][: rng.randrange(len(held[slot]) + 1)]
            cache.truncate(slot, len(held[slot]))
        elif action < 0.85:
            held.pop(slot, None)
            cache.remove(slot)
        query = [rng.randrange(4) for _ in range(rng.randrange(1, 14))]
        best = max((_common(query, tokens) for tokens in held.values()), default=0)
        match = cache.match_prefix(query)
        assert match.length == best
        expected = {s for s, tokens in held.items() if best and _common(query, tokens) >= best}
        assert match.slots == expected
        for s, tokens in held.items():
            assert cache.tokens(s) == tokens


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_shared_prefix_length():
    from llmasos.kernel.prefix_cache import shared_prefix_length

    assert shared_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert shared_prefix_length([1, 2], [1, 2, 3]) == 2
    assert shared_prefix_length([], [1]) == 0
