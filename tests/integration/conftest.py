"""Integration tests run the real llama.cpp engine on the real default model.

The default model is imported once per session into the session's home; each test's own
home gets it as hard links (no copy), so a test starts from a clean repository that already
holds the default model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from llmasos import Client
from llmasos.models.default import default_model_path

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
def model_path(session_home: Path) -> Path:
    """The default model's GGUF in the session's repository (imported on first use)."""
    return default_model_path(session_home)


def seed_home(home: Path, source: Path) -> Path:
    """Give `home` the models of the home `source` (hard links to the same blobs) and its
    Hugging Face copies (a link to the same folder: each takes minutes to make)."""
    for folder in ("blobs", "manifests"):
        (home / "models" / folder).mkdir(parents=True, exist_ok=True)
    (source / "models" / "hf").mkdir(exist_ok=True)
    if not (home / "models" / "hf").exists():
        (home / "models" / "hf").symlink_to(source / "models" / "hf")
    for blob in (source / "models" / "blobs").iterdir():
        target = home / "models" / "blobs" / blob.name
        if not target.exists():
            os.link(blob, target)
    shutil.copytree(
        source / "models" / "manifests", home / "models" / "manifests", dirs_exist_ok=True
    )
    return home


@pytest.fixture(autouse=True)
def seeded_home(llmasos_home: Path, session_home: Path, model_path: Path) -> Path:
    return seed_home(llmasos_home, session_home)


@pytest.fixture
def fresh_home(tmp_path_factory: pytest.TempPathFactory, session_home: Path, model_path: Path):
    """A further seeded home, for a server of a test's own."""
    return seed_home(tmp_path_factory.mktemp("home"), session_home)


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


@pytest.fixture(scope="module")
def url(session_home, model_path):
    """A server on the session's home (the default models), for the module's tests."""
    from tests.integration.test_server import start_server, stop_server

    server, address = start_server(home=session_home)
    yield address
    stop_server(server)
