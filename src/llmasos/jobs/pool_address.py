"""Where a cluster replica's pool is, handed to the job workers it starts (their environment):
a worker that finds it tokenises its data across the pool's replicas (jobs/partitions.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ADDRESS_ENV = "LLMASOS_RAY_ADDRESS"
NAMESPACE_ENV = "LLMASOS_RAY_NAMESPACE"
ACTORS_ENV = "LLMASOS_POOL_ACTORS"  # the name prefix of the pool's replica actors
POOL_ENVIRONMENT = (ADDRESS_ENV, NAMESPACE_ENV, ACTORS_ENV)


@dataclass(frozen=True)
class PoolAddress:
    """Where a pool's replicas are: the Ray cluster, the namespace of their named actors and
    the prefix of those names (`{pool}.replica.` and the replica's number)."""

    ray_address: str
    namespace: str
    actor_prefix: str

    def environment(self) -> dict[str, str]:
        return {
            ADDRESS_ENV: self.ray_address,
            NAMESPACE_ENV: self.namespace,
            ACTORS_ENV: self.actor_prefix,
        }

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> PoolAddress | None:
        if not all(env.get(name) for name in POOL_ENVIRONMENT):
            return None
        return cls(env[ADDRESS_ENV], env[NAMESPACE_ENV], env[ACTORS_ENV])
