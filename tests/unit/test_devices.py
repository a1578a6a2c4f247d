import os

import pytest

from llmasos.engine.devices import DeviceKind, discover_devices
from llmasos.errors import InvalidRequestError
from llmasos.runtime.factory import default_devices
from llmasos.server.launch import parse_bytes


def test_the_cpu_is_discovered_with_the_machines_memory():
    cpu = [d for d in discover_devices() if d.kind is DeviceKind.CPU]
    assert len(cpu) == 1
    assert cpu[0].total_bytes == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_default_budget_is_half_the_ram_unless_given():
    (device,) = default_devices()  # this build runs on the CPU
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert (device.name, device.capacity_bytes, device.gpu_index) == ("cpu", ram // 2, None)
    assert default_devices(3 << 30)[0].capacity_bytes == 3 << 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8GiB", 8 << 30), ("512MB", 512_000_000), ("1.5g", 1_500_000_000), ("4096", 4096)],
)
def test_sizes_parse_with_units(text, expected):
    assert parse_bytes("memory_budget", text) == expected


@pytest.mark.parametrize("text", ["lots", "8 parsecs", "-1", "0"])
def test_bad_sizes_name_the_option(text):
    with pytest.raises(InvalidRequestError, match="memory_budget"):
        parse_bytes("memory_budget", text)
