"""Token buckets behind the per-key rates (server/rate_limits.py)."""

import asyncio
import threading

import pytest

from llmasos.errors import RateLimitedError
from llmasos.server.rate_limits import Buckets, RateLimiter, RateLimits


def test_limiters_sharing_buckets_hold_one_rate_between_them():
    shared = Buckets()  # as a cluster's replicas share the pool's ledger
    first, second = (RateLimiter(RateLimits(requests_per_minute=3), shared) for _ in range(2))
    first.take_request("key-1")
    second.take_request("key-1")
    first.take_request("key-1")
    with pytest.raises(RateLimitedError):
        second.take_request("key-1")
    second.take_request("key-2")  # another caller has its own bucket


class AcrossTheNetwork:
    """A shared store (as a cluster's ledger is) that notes the thread each take ran on."""

    def __init__(self) -> None:
        self.buckets, self.threads = Buckets(), []

    def take(self, kind: str, caller: str, amount: int, per_minute: int) -> int:
        self.threads.append(threading.get_ident())
        return self.buckets.take(kind, caller, amount, per_minute)


def test_a_shared_store_is_asked_off_the_event_loop_and_still_limits():
    store = AcrossTheNetwork()
    limiter = RateLimiter(RateLimits(requests_per_minute=2, tokens_per_minute=100), store)

    async def calls() -> int:
        await limiter.admit("key-1")
        await limiter.charge("key-1", 60)
        with pytest.raises(RateLimitedError):
            await limiter.charge("key-1", 60)
        await limiter.admit("key-1")
        with pytest.raises(RateLimitedError):
            await limiter.admit("key-1")
        return threading.get_ident()

    loop_thread = asyncio.run(calls())
    assert len(store.threads) == 5 and loop_thread not in store.threads
