"""Token buckets behind the per-key rates (server/rate_limits.py)."""

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
