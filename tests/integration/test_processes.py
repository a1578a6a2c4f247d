"""Process mechanics on the real engine: policies, signals, stopping, streaming, bad input."""

from __future__ import annotations

import pytest

from llmasos import (
    Client,
    ContextLengthError,
    FinishReason,
    InvalidRequestError,
    NoSuchProcessError,
    ProcessState,
    ProcessTerminatedError,
    UnknownModelError,
)
from llmasos.kernel.process import Signal
from llmasos.runtime.factory import EngineOptions, load_engine
from tests.integration.conftest import PROMPTS
from tests.unit.test_kernel import wait_until


@pytest.fixture(scope="module")
def client(model_path):
    with Client(model=str(model_path), max_running=4, num_slots=4, context_length=512) as c:
        yield c


def tick_order(client: Client, pids: list[int]) -> list[int]:
    """Pids in the order they first generated a token."""
    seen: list[int] = []
    for record in client.kernel.trace:
        for pid, _ in record.batch:
            if pid in pids and pid not in seen and record.generated_tokens:
                seen.append(pid)
    return seen


@pytest.mark.parametrize(("policy", "expected"), [("fcfs", [0, 1, 2]), ("sjf", [1, 2, 0])])
def test_non_preemptive_policies_finish_jobs_in_their_documented_order(
    model_path, policy, expected
):
    lengths = [12, 4, 8]
    with Client(policy, model=str(model_path), max_running=1, num_slots=1, context_length=512) as c:
        with c.kernel.paused():
            handles = [
                c.spawn(p, max_tokens=n, temperature=0)
                for p, n in zip(PROMPTS, lengths, strict=False)
            ]
        for h in handles:
            h.wait()
        finished = sorted(handles, key=lambda h: c.kernel.get(h.pid).finished_at)
        assert [handles.index(h) for h in finished] == expected
        pids = [h.pid for h in handles]
        assert tick_order(c, pids) == [pids[i] for i in expected]


def test_suspend_holds_a_process_and_resume_finishes_it_unchanged(client, solo):
    sleeper = client.spawn(PROMPTS[0], max_tokens=40, temperature=0)
    wait_until(lambda: sleeper.state is ProcessState.RUNNING)
    sleeper.suspend()
    assert sleeper.state is ProcessState.SUSPENDED
    frozen = client.kernel.get(sleeper.pid).num_output_tokens
    client.generate_text(PROMPTS[1], max_tokens=6, temperature=0)
    assert client.kernel.get(sleeper.pid).num_output_tokens == frozen
    sleeper.resume()
    assert sleeper.wait().token_ids == solo(PROMPTS[0], 40)


def test_kill_frees_the_sequence(client):
    victim = client.spawn(PROMPTS[3], max_tokens=200, temperature=0)
    wait_until(lambda: victim.state is ProcessState.RUNNING)
    slot = client.kernel.get(victim.pid).slot
    assert client.kernel.engine.cached_positions(slot) > 0
    victim.kill()
    assert victim.wait().finish_reason is FinishReason.KILLED
    assert client.kernel.engine.cached_positions(slot) == 0
    assert client.kernel.memory_usage().owned_slots == 0
    with pytest.raises(ProcessTerminatedError):
        victim.resume()


def test_max_tokens_ends_with_length_and_counts_usage(client):
    result = client.spawn(PROMPTS[0], max_tokens=7, temperature=0).wait()
    assert result.finish_reason is FinishReason.LENGTH
    assert len(result.token_ids) == result.usage.completion_tokens == 7
    assert result.usage.prompt_tokens == len(client.kernel.engine.tokenize(PROMPTS[0]))
    assert result.timings.time_to_first_token_s is not None


def test_stop_string_ends_generation_before_it(client):
    full = client.generate_text(PROMPTS[2], max_tokens=30, temperature=0)
    stop = full.split()[4]
    result = client.spawn(PROMPTS[2], max_tokens=30, temperature=0, stop=[stop]).wait()
    assert result.finish_reason is FinishReason.STOP
    assert result.text == full[: full.index(stop)]
    assert stop not in result.text


def test_streamed_pieces_add_up_to_the_final_text(client):
    handle = client.spawn(PROMPTS[1], max_tokens=20, temperature=0)
    pieces = list(handle.stream())
    assert len(pieces) > 1
    assert "".join(pieces) == handle.wait().text
    assert client.generate_text(PROMPTS[1], max_tokens=20, temperature=0) == "".join(pieces)


@pytest.mark.parametrize(
    ("prompt", "kwargs", "error", "message"),
    [
        ("", {}, InvalidRequestError, "prompt: must not be empty"),
        (None, {}, InvalidRequestError, "prompt: must be a string"),
        ("x", {"max_tokens": -3}, InvalidRequestError, "max_tokens: must be >= 1"),
        ("x", {"temperature": -0.5}, InvalidRequestError, "temperature: must be between 0.0"),
        ("x", {"top_p": 1.01}, InvalidRequestError, "top_p: must be in (0, 1]"),
        ("word " * 600, {"max_tokens": 10}, ContextLengthError, "context length of 512"),
        ("x", {"max_tokens": 600}, ContextLengthError, "context length of 512"),
        ("x", {"model": "llama-70b"}, UnknownModelError, "unknown model 'llama-70b'"),
    ],
)
def test_bad_input_gets_a_clear_error_and_others_keep_running(
    client, prompt, kwargs, error, message
):
    running = client.spawn(PROMPTS[0], max_tokens=10, temperature=0)
    with pytest.raises(error) as info:
        client.spawn(prompt, **kwargs)
    assert message in str(info.value)
    assert running.wait().finish_reason is FinishReason.LENGTH


@pytest.mark.parametrize("signal", list(Signal))
def test_a_signal_to_an_unknown_pid_is_refused_and_changes_nothing(client, signal):
    running = client.spawn(PROMPTS[0], max_tokens=10, temperature=0)
    with pytest.raises(NoSuchProcessError, match="pid 424242: no such process"):
        client.kernel.signal(424242, signal)
    with pytest.raises(NoSuchProcessError, match="pid 424242"):
        client.process(424242)
    assert running.wait().finish_reason is FinishReason.LENGTH


def test_unknown_model_name_at_load_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match="gemma3-270m:q4_k_m"):
        load_engine("mistral-7b", EngineOptions())


def test_an_f16_kv_cache_can_be_chosen_and_an_unknown_type_is_refused(model_path):
    with Client(model=str(model_path), num_slots=2, context_length=512, kv_cache_type="f16") as c:
        assert c.kernel.engine.info.kv_cache_type == "f16"
        result = c.spawn(PROMPTS[0], max_tokens=6, temperature=0).wait()
        assert result.usage.completion_tokens == 6
    with pytest.raises(InvalidRequestError, match="kv_cache_type: must be one of"):
        Client(model=str(model_path), kv_cache_type="f32")
