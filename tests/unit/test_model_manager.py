"""The model manager on fake engines: budget, LRU unload, keep-alive, placement, pids."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from llmasos.errors import EngineError, MemoryBudgetError, ModelBusyError, UnknownModelError
from llmasos.kernel.config import KernelConfig
from llmasos.models.placement import Device, FitPolicy
from llmasos.models.repository import Repository
from llmasos.runtime.manager import ModelManager
from llmasos.sampling import SamplingParams
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.unit.fake_engine import FakeEngine
from tests.unit.test_kernel import wait_until

MODEL_BYTES = 474144  # the tiny GGUF; KV is counted as 0 below


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def repository(tmp_path) -> Repository:
    repo = Repository(tmp_path / "models")
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")
    for name in ("a", "b", "c"):
        repo.import_file(tiny, name)
    return repo


def manager(
    repository, devices, *, placement=FitPolicy.FIRST_FIT, clock=None, keep_alive_s=300.0
) -> ModelManager:
    loads = []

    def load(path, name, device):
        loads.append((name, device.name))
        return FakeEngine(num_slots=2, model_name=name)

    models = ModelManager(
        repository,
        kernel_config=KernelConfig(max_running=2),
        load_engine=load,
        kv_bytes_for=lambda manifest: 0,
        devices=devices,
        placement=placement,
        keep_alive_s=keep_alive_s,
        default_model="a",
        clock=clock or Clock(),
    )
    models.loads = loads  # type: ignore[attr-defined]
    return models


def test_the_least_recently_used_idle_model_makes_room(repository):
    clock = Clock()
    models = manager(repository, [Device("cpu", 2 * MODEL_BYTES)], clock=clock)
    models.load("a")
    clock.now = 1
    models.load("b")
    clock.now = 2
    models.load("a")  # a is now more recent than b
    clock.now = 3
    models.load("c")
    assert sorted(m.name for m in models.loaded()) == ["a:latest", "c:latest"]
    models.close()


def test_a_model_with_live_processes_is_never_unloaded_under_them(repository):
    models = manager(repository, [Device("cpu", 2 * MODEL_BYTES)])
    kernel_a = models.load("a").kernel
    kernel_a.engine.close_gate()
    busy = kernel_a.spawn("x", SamplingParams(max_tokens=50))
    models.load("b")
    models.load("c")  # room comes from b, the idle one, even though a is older
    assert sorted(m.name for m in models.loaded()) == ["a:latest", "c:latest"]
    with pytest.raises(ModelBusyError, match="1 live processes"):
        models.unload("a")
    kernel_c = models.load("c").kernel
    kernel_c.engine.close_gate()
    kernel_c.spawn("y", SamplingParams(max_tokens=50))
    with pytest.raises(MemoryBudgetError, match="needs 0 MiB"):
        models.load("b")
    kernel_a.engine.open_gate()
    busy.done.wait(10)
    kernel_c.engine.open_gate()
    models.close()


def test_idle_models_go_when_their_keep_alive_runs_out(repository):
    clock = Clock()
    models = manager(repository, [Device("cpu", 10 * MODEL_BYTES)], clock=clock, keep_alive_s=60)
    models.load("a")
    models.load("b", pin=True)
    clock.now = 30
    assert models.reap_idle() == []
    clock.now = 61
    assert models.reap_idle() == ["a:latest"]
    assert [m.name for m in models.loaded()] == ["b:latest"]
    models.close()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (FitPolicy.FIRST_FIT, ["gpu0", "gpu0", "gpu1"]),
        (FitPolicy.BEST_FIT, ["gpu0", "gpu0", "gpu1"]),  # the tightest fit each time
        (FitPolicy.WORST_FIT, ["gpu1", "gpu1", "gpu0"]),  # the most room left; ties: first
    ],
)
def test_placement_policies_choose_devices_and_ps_shows_them(repository, policy, expected):
    devices = [Device("gpu0", 2 * MODEL_BYTES), Device("gpu1", 4 * MODEL_BYTES)]
    models = manager(repository, devices, placement=policy)
    for name in ("a", "b", "c"):
        models.load(name)
    where = {m.name: m.device for m in models.loaded()}
    assert [where[f"{n}:latest"] for n in ("a", "b", "c")] == expected
    assert models.loads == list(zip(("a:latest", "b:latest", "c:latest"), expected, strict=True))
    models.close()


def test_kernels_of_different_models_share_one_pid_space(repository):
    models = manager(repository, [Device("cpu", 10 * MODEL_BYTES)])
    params = SamplingParams(max_tokens=2, temperature=0)
    first = models.load("a").kernel.spawn("x", params)
    second = models.load("b").kernel.spawn("y", params)
    assert second.pid == first.pid + 1
    assert models.kernel_of(second.pid) is models.peek("b")
    assert [p.pid for p in models.processes()] == [first.pid, second.pid]
    with pytest.raises(UnknownModelError, match="nope"):
        models.load("nope")
    models.close()


def gate_loads(models: ModelManager, name: str) -> tuple[threading.Event, threading.Event]:
    """Make loads of `name` set the first event returned (entered), then wait for the second
    (the gate) before they load."""
    entered, gate = threading.Event(), threading.Event()
    real = models._load_engine

    def load(path, loading, device):
        if loading == name:
            entered.set()
            gate.wait(120)
        return real(path, loading, device)

    models._load_engine = load
    return entered, gate


def test_callers_of_a_model_being_loaded_wait_for_that_one_load(repository):
    models = manager(repository, [Device("cpu", 10 * MODEL_BYTES)])
    entered, gate = gate_loads(models, "b:latest")
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(models.load, "b")
        assert entered.wait(10)
        waiters = [pool.submit(models.load, "b") for _ in range(3)]
        other = models.load("a")  # another model loads meanwhile
        assert other.name == "a:latest" and not first.done()
        wait_until(lambda: models._loading["b:latest"].waiters == 3)
        gate.set()
        kernels = {f.result(10).kernel for f in [first, *waiters]}
    assert len(kernels) == 1  # one engine, shared
    assert models.loads.count(("b:latest", "cpu")) == 1
    models.close()


def test_a_failed_load_reaches_every_waiter_and_a_later_call_tries_again(repository):
    models = manager(repository, [Device("cpu", 10 * MODEL_BYTES)])
    entered, gate = gate_loads(models, "b:latest")
    real = models._load_engine
    failures = iter([EngineError("model: injected load failure")])

    def failing(path, name, device):
        engine = real(path, name, device)
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return engine

    models._load_engine = failing
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(models.load, "b") for _ in range(3)]
        assert entered.wait(10)
        wait_until(lambda: models._loading["b:latest"].waiters == 2)
        gate.set()
        errors = [f.exception(10) for f in calls]
    assert all(isinstance(e, EngineError) and "injected" in str(e) for e in errors)
    assert models.load("b").name == "b:latest"  # nothing stuck: the next call loads it
    models.close()


def test_memory_of_a_model_being_closed_counts_until_it_is_closed(repository):
    models = manager(repository, [Device("cpu", 2 * MODEL_BYTES)])
    closing, release = threading.Event(), threading.Event()
    kernel_a = models.load("a").kernel
    real_close = kernel_a.close

    def slow_close():
        closing.set()
        release.wait(10)
        real_close()

    kernel_a.close = slow_close
    models.load("b")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        unloading = pool.submit(models.unload, "a")
        assert closing.wait(10)
        loading = pool.submit(models.load, "c")  # room only once a's memory is free
        assert not loading.done()
        release.set()
        unloading.result(10)
        assert loading.result(10).name == "c:latest"
    assert sorted(m.name for m in models.loaded()) == ["b:latest", "c:latest"]
    models.close()


def test_a_close_that_fails_frees_the_books_and_stops_nothing(repository, caplog):
    models = manager(repository, [Device("cpu", 2 * MODEL_BYTES)])
    kernel_a = models.load("a").kernel

    def broken_close():
        raise RuntimeError("injected close failure")

    kernel_a.close = broken_close
    models.unload("a")
    assert "closing its kernel failed" in caplog.text
    models.load("b")
    models.load("c")  # a's memory counted as free once its close ended, badly or not
    assert sorted(m.name for m in models.loaded()) == ["b:latest", "c:latest"]
    models.close()


def test_an_adapter_model_loads_its_base_file_with_the_adapter_applied(repository, tmp_path):
    from tests.unit.test_repository_adapters import write_adapter

    adapter = repository.import_adapter(write_adapter(tmp_path / "lora.gguf"), "a:lora", "a")
    calls = []

    def load(path, name, device, adapter=None):
        calls.append((path, name, adapter))
        return FakeEngine(num_slots=2, model_name=name)

    models = ModelManager(
        repository,
        kernel_config=KernelConfig(max_running=2),
        load_engine=load,
        kv_bytes_for=lambda manifest: 0,
        devices=[Device("cpu", 10 * MODEL_BYTES)],
        default_model="a",
    )
    loaded = models.load("a:lora")
    models.load("a")
    base = repository.blob_path(repository.show("a"))
    assert calls == [
        (base, "a:lora", repository.blob_path(adapter)),
        (base, "a:latest", None),  # a plain model's loader call has no adapter
    ]
    assert loaded.memory_bytes == adapter.size_bytes > MODEL_BYTES  # base and adapter
    models.close()
