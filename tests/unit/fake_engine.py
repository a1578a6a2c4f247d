"""A deterministic stand-in for the engine, for unit tests of the kernel and its policies.

Its "model": a token is a character code; the next token depends only on the tokens the slot holds
(a lowercase letter picked from their sum), so a process's output depends on its own history and
nothing else, as with the real engine. A prompt ending in "$" makes the model emit the
end-of-generation token after three letters. The KV "cache" is the list of tokens per slot, and the
fake checks every step the way llama.cpp would (positions must continue the slot's history).

Being instant, the fake would finish a process before a test could signal it, so a test can close
its gate: each step then waits for a permit from allow().

Faults a test can inject: fail_next_step (an EngineError from the step), crash_next_step (an
unexpected exception, as a kernel bug would raise), fail_next_restore, refuse_truncate, and
slow_tokenize (tokenize waits on an event, to race a close against it).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from llmasos.engine.base import BatchItem, EngineInfo, StepInterrupted
from llmasos.errors import EngineError
from llmasos.sampling import SamplingParams

BOS, EOS = 2, 1


@dataclass
class FakeSampler:
    params: SamplingParams
    rng: random.Random
    closed: bool = False

    def pick(self, history: list[int]) -> int:
        if "$" in "".join(chr(t) for t in history if t > 31) and _letters(history) >= 3:
            return EOS
        base = ord("a") + sum(history) % 26
        if self.params.greedy:
            return base
        return ord("a") + (base - ord("a") + self.rng.randrange(3)) % 26

    @property
    def failure(self) -> str | None:
        return None

    def take_logprobs(self) -> None:
        return None

    def fork(self, seed: int) -> FakeSampler:
        return FakeSampler(self.params, random.Random(seed))

    def close(self) -> None:
        self.closed = True


def _letters(history: list[int]) -> int:
    """Letters generated after the "$" marker."""
    text = "".join(chr(t) for t in history if t > 31)
    return len(text) - text.index("$") - 1


class FakeEngine:
    """Implements engine.base.Engine in pure Python."""

    def __init__(
        self,
        num_slots: int = 4,
        context_length: int = 256,
        max_batch_tokens: int = 64,
        model_name: str = "fake",
    ) -> None:
        self.info = EngineInfo(
            model_name=model_name,
            num_slots=num_slots,
            context_length=context_length,
            max_batch_tokens=max_batch_tokens,
            vocab_size=128,
        )
        self.cache: dict[int, list[int]] = {slot: [] for slot in range(num_slots)}
        self.steps: list[list[BatchItem]] = []
        self.snapshots = 0
        self.restores = 0
        self.copies = 0
        self.fail_next_step = False
        self.crash_next_step = False
        self.fail_next_restore = False
        self.refuse_truncate = False
        self.tokenize_gate: threading.Event | None = None
        self.freed = False  # close() ran: using the engine now would be a use-after-free
        self.closed = False
        self._gate: threading.Semaphore | None = None
        self.at_gate = False  # a step is waiting for a permit
        self.cut = False  # interrupt() asked: the step under way (or the next) stops short

    def close_gate(self) -> None:
        """From now on each step waits for a permit."""
        self._gate = threading.Semaphore(0)

    def allow(self, num_steps: int) -> None:
        assert self._gate is not None
        self._gate.release(num_steps)

    def open_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release(1_000_000)

    def interrupt(self, cut: bool = True) -> None:
        self.cut = cut

    def tokenize(self, text: str) -> list[int]:
        if self.tokenize_gate is not None:
            self.tokenize_gate.wait(10)
        if self.freed:
            raise AssertionError("tokenize after the engine was freed")
        return [BOS, *(min(ord(c), 127) for c in text)]

    def token_bytes(self, token: int) -> bytes:
        return chr(token).encode() if token > 31 else b""

    def is_end_of_generation(self, token: int) -> bool:
        return token == EOS

    def new_sampler(self, params: SamplingParams, seed: int) -> FakeSampler:
        return FakeSampler(params, random.Random(seed))

    def step(self, items: Sequence[BatchItem]) -> list[int | None]:
        if self._gate is not None:
            self.at_gate = True
            self._gate.acquire()
            self.at_gate = False
        if self.cut:
            raise StepInterrupted()
        if self.fail_next_step:
            self.fail_next_step = False
            raise EngineError("injected failure")
        if self.crash_next_step:
            self.crash_next_step = False
            raise RuntimeError("injected bug with a secret detail")
        if sum(len(item.tokens) for item in items) > self.info.max_batch_tokens:
            raise EngineError("batch too large")
        self.steps.append(list(items))
        self._histories = [list(self.cache[item.slot]) + list(item.tokens) for item in items]
        out: list[int | None] = []
        for item in items:
            history = self.cache[item.slot]
            if item.start_pos != len(history):
                raise EngineError(f"slot {item.slot}: position {item.start_pos} != {len(history)}")
            history.extend(item.tokens)
            if len(history) > self.info.context_length:
                raise EngineError("context overflow")
            sampler = item.sampler
            out.append(sampler.pick(history) if isinstance(sampler, FakeSampler) else None)
        return out

    def sample_again(self, index: int, sampler: FakeSampler) -> int:
        return sampler.pick(self._histories[index])

    def snapshot(self, slot: int) -> bytes:
        self.snapshots += 1
        return json.dumps(self.cache[slot]).encode()

    def restore(self, state: bytes, slot: int) -> None:
        if self.fail_next_restore:
            self.fail_next_restore = False
            raise EngineError(f"restore into slot {slot} failed (injected)")
        if self.cache[slot]:
            raise EngineError(f"slot {slot} is not empty")
        self.restores += 1
        self.cache[slot] = json.loads(state)

    def copy_prefix(self, src_slot: int, dst_slot: int, num_tokens: int) -> None:
        if self.cache[dst_slot]:
            raise EngineError(f"slot {dst_slot} is not empty")
        self.copies += 1
        self.cache[dst_slot] = self.cache[src_slot][:num_tokens]

    def truncate(self, slot: int, num_tokens: int) -> bool:
        if self.refuse_truncate:
            return False
        del self.cache[slot][num_tokens:]
        return True

    def release(self, slot: int) -> None:
        self.cache[slot] = []

    def cached_positions(self, slot: int) -> int:
        return len(self.cache[slot])

    def close(self) -> None:
        self.open_gate()
        self.closed = True
        self.freed = True
