"""How a job's records are cut into partitions for a cluster's replicas, how a worker learns
where its pool is, and that the errors a replica raises cross back whole."""

from __future__ import annotations

import pickle

import pytest

from llmasos.errors import ClusterUnavailableError, ContextLengthError, InvalidRequestError
from llmasos.jobs.partitions import split_evenly
from llmasos.jobs.pool_address import PoolAddress


@pytest.mark.parametrize(("count", "parts"), [(12, 3), (13, 3), (2, 5), (1, 1), (100, 7)])
def test_partitions_keep_every_record_once_in_order_and_differ_by_one_at_most(count, parts):
    runs = split_evenly(list(range(count)), parts)
    assert [item for run in runs for item in run] == list(range(count))
    assert len(runs) == min(parts, count) and all(runs)
    assert max(map(len, runs)) - min(map(len, runs)) <= 1


def test_no_records_make_one_empty_partition():
    assert split_evenly([], 3) == [[]]


def test_a_worker_finds_its_pool_only_when_all_of_its_address_is_given():
    where = PoolAddress("127.0.0.1:6379", "llmasos", "llmasos.replica.")
    assert PoolAddress.from_environment(where.environment()) == where
    partial = {k: v for k, v in where.environment().items() if "NAMESPACE" not in k}
    assert PoolAddress.from_environment(partial) is None
    assert PoolAddress.from_environment({}) is None


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequestError("data", "line 3: 900 tokens; max_tokens_per_sample is 512"),
        ContextLengthError(900, 200, 1024),
        ClusterUnavailableError("rate ledger"),
    ],
)
def test_an_error_raised_on_a_replica_crosses_back_with_its_kind_and_fields(error):
    crossed = pickle.loads(pickle.dumps(error))
    assert type(crossed) is type(error) and str(crossed) == str(error)
    assert crossed.__dict__ == error.__dict__
