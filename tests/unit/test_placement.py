import pytest

from llmasos.errors import InvalidRequestError
from llmasos.models.placement import Device, FitPolicy, place

GIB = 1 << 30
DEVICES = [Device("cuda:0", 8 * GIB), Device("cuda:1", 24 * GIB), Device("cuda:2", 12 * GIB)]
USED = {"cuda:0": 2 * GIB, "cuda:1": 10 * GIB, "cuda:2": 1 * GIB}  # free: 6, 14, 11 GiB


@pytest.mark.parametrize(
    ("policy", "size", "expected"),
    [
        (FitPolicy.FIRST_FIT, 5 * GIB, "cuda:0"),
        (FitPolicy.BEST_FIT, 5 * GIB, "cuda:0"),  # leaves 1 GiB
        (FitPolicy.WORST_FIT, 5 * GIB, "cuda:1"),  # leaves 9 GiB
        (FitPolicy.FIRST_FIT, 7 * GIB, "cuda:1"),
        (FitPolicy.BEST_FIT, 7 * GIB, "cuda:2"),  # leaves 4 GiB, cuda:1 would leave 7
        (FitPolicy.WORST_FIT, 13 * GIB, "cuda:1"),
    ],
)
def test_fit_policies_choose_as_documented(policy, size, expected):
    assert place(size, DEVICES, USED, policy).name == expected


def test_no_device_with_room_is_none():
    assert place(15 * GIB, DEVICES, USED, FitPolicy.WORST_FIT) is None


def test_unknown_policy_names_the_choices():
    with pytest.raises(InvalidRequestError, match="first-fit"):
        FitPolicy.parse("random-fit")
