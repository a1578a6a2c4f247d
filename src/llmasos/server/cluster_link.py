"""A cluster replica's link to its front (llmasos serve --cluster): where the front answers,
the token the replicas and the front share, and the pool's shared rate buckets.

The batch runner of the one replica that leads batches sends each line through the front, which
routes it to a replica (cache-aware, re-run on another if one goes): a batch is split across
the replicas line by line. A line reaches the replica's completion routes under
INTERNAL_PREFIX with the shared token and the batch's id, and runs as the batch's creator, as
it would in-process on a single server. Without the token those routes do not exist.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from llmasos.errors import AuthenticationError
from llmasos.server.rate_limits import BucketStore

TOKEN_HEADER = "x-llmasos-cluster-token"
INTERNAL_PREFIX = "/internal/batch"


@dataclass(frozen=True)
class ClusterLink:
    front_url: str  # where batch lines go (the front, which routes them)
    token: str  # shared by the front and its replicas, never shown to a client
    rate_buckets: BucketStore | None = None  # the pool's shared rate buckets

    def __repr__(self) -> str:  # the token stays out of logs
        return f"ClusterLink(front_url={self.front_url!r})"


def member_only(link: ClusterLink) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing any request without the cluster's token."""

    async def check(request: Request) -> None:
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(given, link.token.encode()):
            raise AuthenticationError("this route is for the cluster's own batch lines")

    return check
