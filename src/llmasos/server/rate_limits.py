"""Per-key request and token rates: a token bucket per caller for each.

A caller is its stored key's id, or its owner for the static keys (and "anonymous" on a
server without keys). A request takes one from the request bucket; a generation takes its
max_tokens times its number of outputs from the token bucket, before anything is spawned. A
bucket that cannot pay answers 429 with Retry-After: the whole seconds until it can. A bucket
holds a minute's worth and refills continuously; once MAX_CALLERS buckets exist, the full ones
(idle callers') are forgotten. Failed authentications count against the client's address.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi.concurrency import run_in_threadpool

from llmasos.errors import InvalidRequestError, RateLimitedError

MAX_CALLERS = 100_000  # buckets kept before the full ones are forgotten


@dataclass
class Bucket:
    level: float
    at: float
    per_minute: int


class BucketStore(Protocol):
    """Where the buckets live: this process (Buckets), or one place a cluster's replicas share
    (llmasos.cluster.shared_limits), so that a key's rate holds across them all."""

    def take(self, kind: str, caller: str, amount: int, per_minute: int) -> int:
        """0 when the caller's `kind` bucket paid `amount`, else the whole seconds until it
        could (nothing is taken then)."""
        ...


class Buckets:
    """Token buckets in this process."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._lock = threading.Lock()

    def take(self, kind: str, caller: str, amount: int, per_minute: int) -> int:
        now = time.monotonic()
        rate = per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get((kind, caller))
            if bucket is None:
                if len(self._buckets) >= MAX_CALLERS:
                    self._forget_full(now)
                bucket = self._buckets[(kind, caller)] = Bucket(per_minute, now, per_minute)
            bucket.level = min(per_minute, bucket.level + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.level < amount:
                return max(1, math.ceil((amount - bucket.level) / rate))
            bucket.level -= amount
            return 0

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (their callers were idle): nothing is lost."""
        for key, bucket in list(self._buckets.items()):
            if bucket.level + (now - bucket.at) * bucket.per_minute / 60.0 >= bucket.per_minute:
                del self._buckets[key]


@dataclass(frozen=True)
class RateLimits:
    """Per caller and minute; None is no limit."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 10**9:
                raise InvalidRequestError(name, "must be 1 to 10^9 (or unset for no limit)")


class RateLimiter:
    def __init__(self, limits: RateLimits, buckets: BucketStore | None = None) -> None:
        self.limits = limits
        self._buckets = buckets or Buckets()

    def take_request(self, caller: str) -> None:
        self._take("requests", caller, 1, self.limits.requests_per_minute)

    def take_tokens(self, caller: str, tokens: int) -> None:
        self._take("tokens", caller, tokens, self.limits.tokens_per_minute)

    async def admit(self, caller: str) -> None:
        """take_request from the event loop (a shared store is asked from a worker thread)."""
        await self._from_loop(self.take_request, caller)

    async def charge(self, caller: str, tokens: int) -> None:
        """take_tokens from the event loop (a shared store is asked from a worker thread)."""
        await self._from_loop(self.take_tokens, caller, tokens)

    async def _from_loop(self, take: Callable[..., None], *args: Any) -> None:
        if isinstance(self._buckets, Buckets):  # in memory: nothing to wait for
            take(*args)
        else:  # a cluster's ledger, across the network: the loop must not wait on it
            await run_in_threadpool(take, *args)

    def _take(self, kind: str, caller: str, amount: int, per_minute: int | None) -> None:
        if per_minute is None:
            return
        if amount > per_minute:
            raise InvalidRequestError(
                "max_tokens", f"asks for {amount} tokens; this key may use {per_minute} a minute"
            )
        wait = self._buckets.take(kind, caller, amount, per_minute)
        if wait:
            raise RateLimitedError(kind, per_minute, wait)
