"""Integration tests run the real llama.cpp engine on the real default model."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmasos import Client
from llmasos.models.default import default_model_path
from llmasos.settings import Settings

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village by the sea,",
    "The history of the Roman Empire spans many centuries, beginning with the founding of the "
    "city and ending with the fall of Constantinople. Historians divide it into periods: " * 3,
    "Water boils at",
    "In computer science, a scheduler decides which process runs next. Operating systems use "
    "many policies, such as first come first served, shortest job first and round robin. " * 4,
    "import numpy as np\n",
    "My favourite colour is",
]


@pytest.fixture(scope="session")
def model_path() -> Path:
    return default_model_path(Settings.from_environment().home)


@pytest.fixture(scope="module")
def solo(model_path):
    """Runs one prompt at a time on its own kernel: the reference every batched run must match."""
    never_share = 10**6  # the reference computes every prompt itself
    with Client(
        model=str(model_path),
        max_running=1,
        num_slots=1,
        context_length=1024,
        min_prefix_tokens=never_share,
    ) as client:
        cache: dict[tuple, list[int]] = {}

        def run(prompt: str, max_tokens: int, **sampling) -> list[int]:
            key = (prompt, max_tokens, tuple(sorted(sampling.items())))
            if key not in cache:
                params = {"temperature": 0, **sampling}
                cache[key] = client.spawn(prompt, max_tokens=max_tokens, **params).wait().token_ids
            return cache[key]

        yield run
