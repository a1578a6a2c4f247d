"""How replicas take GPUs: the flag's bounds and a shared GPU's memory budget."""

import pytest

from llmasos.cluster.pool import gpus_for_replicas
from llmasos.cluster.replica import shared_gpu_budget
from llmasos.errors import InvalidRequestError
from llmasos.runtime.factory import GPU_BUDGET_SHARE
from llmasos.server.launch import ServeConfig, parse_bytes

GIB = 2**30


def test_a_replica_sharing_a_gpu_gets_its_share_of_the_memory():
    config = shared_gpu_budget(ServeConfig(), 0.25, [80 * GIB, 40 * GIB])
    budget = parse_bytes("memory_budget", config.memory_budget)
    assert budget == int(40 * GIB * GPU_BUDGET_SHARE / 4)  # a quarter of the smaller one


@pytest.mark.parametrize(
    ("config", "share", "gpus"),
    [
        (ServeConfig(), 1.0, [80 * GIB]),  # a whole GPU: the usual budget
        (ServeConfig(), 0.0, []),  # no GPU
        (ServeConfig(), 0.5, []),  # Ray granted a share, ggml sees no GPU: the CPU's budget
        (ServeConfig(memory_budget="2GiB"), 0.5, [80 * GIB]),  # the flag rules
    ],
)
def test_otherwise_the_budget_is_left_alone(config, share, gpus):
    assert shared_gpu_budget(config, share, gpus) == config


@pytest.mark.parametrize("requested", [0, 0.5, 1, 2])
def test_whole_gpus_or_a_fraction_of_one(requested):
    assert gpus_for_replicas(requested) == requested


@pytest.mark.parametrize("requested", [-1, 1.5])
def test_other_counts_are_refused_naming_the_flag(requested):
    with pytest.raises(InvalidRequestError, match="--gpus-per-replica"):
        gpus_for_replicas(requested)
