"""A job's data preprocessing split across a cluster's replicas, and gathered.

A training job whose worker runs on a replica of `llmasos serve --cluster` tokenises its data
by partitions: one contiguous run of records for each replica of the pool, each tokenised by
that replica (the Ray actor's `tokenise` method), the samples gathered back in the records'
order. A partition whose replica dies on the way goes to another live one, up to
PARTITION_ATTEMPTS times in all; a record the rules refuse (too many tokens) fails the job,
naming its line, as it does in one piece.

The replica that starts the worker tells it where its pool is (a PoolAddress, through the
worker's environment). Without one, or with no replica to be found, the worker tokenises in
one piece, itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from llmasos.errors import ClusterUnavailableError, LLMasOSError
from llmasos.jobs.pool_address import PoolAddress
from llmasos.jobs.task_data import Record
from llmasos.jobs.token_cache import Sample

PARTITION_ATTEMPTS = 3


@dataclass
class Gathered:
    """The samples in the records' order, and how many records each replica tokenised."""

    samples: list[Sample]
    by_replica: dict[str, int] = field(default_factory=dict)
    retries: int = 0


def split_evenly(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """`parts` contiguous runs of `items` whose sizes differ by one at most (none empty)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    runs, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        runs.append(list(items[start:end]))
        start = end
    return runs


def connect(pool: PoolAddress) -> dict[str, Any]:
    """Join the pool's Ray cluster (quietly) and find its replicas: number -> actor."""
    if not ray.is_initialized():
        ray.init(
            address=pool.ray_address,
            namespace=pool.namespace,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    numbers = [n.removeprefix(pool.actor_prefix) for n in ray.util.list_named_actors()]
    found = sorted(int(n) for n in numbers if n.isdigit())
    return {str(n): ray.get_actor(f"{pool.actor_prefix}{n}") for n in found}


def tokenise_across(
    records: Sequence[Record], tokenizer: Any, max_tokens: int, replicas: dict[str, Any]
) -> Gathered:
    """The records' samples, tokenised by `replicas` (name -> actor) a partition each."""
    if not replicas:
        raise ClusterUnavailableError("replicas (none to tokenise on)")
    live = dict(replicas)
    shared = ray.put(tokenizer)
    parts = split_evenly(records, len(live))
    results: list[list[Sample] | None] = [None] * len(parts)
    attempts = [0] * len(parts)
    pending: dict[Any, tuple[int, str]] = {}
    gathered = Gathered([])

    def send(index: int, name: str) -> None:  # the refs of a failed run go with the driver
        attempts[index] += 1
        call = live[name].tokenise.remote(shared, parts[index], max_tokens)
        pending[call] = (index, name)

    for index, name in zip(range(len(parts)), live, strict=False):
        send(index, name)
    while pending:
        (done,), _ = ray.wait(list(pending), num_returns=1)
        index, name = pending.pop(done)
        try:
            results[index] = ray.get(done)
        except RayActorError:  # the replica (or its node) went: another one does it
            live.pop(name, None)
            if attempts[index] >= PARTITION_ATTEMPTS or not live:
                raise ClusterUnavailableError(f"replicas (partition {index} failed)") from None
            gathered.retries += 1
            send(index, min(live, key=lambda n: sum(1 for _, m in pending.values() if m == n)))
            continue
        except RayTaskError as error:  # the data's own fault: the job fails as it would here
            cause = getattr(error, "cause", None)
            if isinstance(cause, LLMasOSError):
                raise cause from None
            raise
        gathered.by_replica[name] = gathered.by_replica.get(name, 0) + len(parts[index])
    gathered.samples = [sample for part in results for sample in part or ()]
    return gathered
