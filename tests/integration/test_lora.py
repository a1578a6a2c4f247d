"""The LoRA adapter pipeline on the real default model: a peft adapter made on the Hugging Face
copy (hf_copy), converted (write_lora_gguf), imported over its base (import_adapter) and served
by llama.cpp, checked against what peft itself computes.

Needs the training extras (torch, transformers, peft); skipped without them. The Hugging Face
copy is made once per session, in the session's repository (about 100 s on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from llmasos import Client
from llmasos.engine.base import BatchItem
from llmasos.errors import ModelInUseError
from llmasos.jobs.hf_model import hf_copy
from llmasos.jobs.lora_gguf import write_lora_gguf
from llmasos.models.default import DEFAULT_MODEL
from llmasos.models.repository import Repository
from llmasos.sampling import SamplingParams
from tests.integration.test_server import LLMASOS, start_server, stop_server

pytestmark = pytest.mark.timeout(900)  # the first test also makes the Hugging Face copy

SEED = 1234
ADAPTER = "mine:lora"
PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Water boils at",
    "Once upon a time, in a small village by the sea,",
    "My favourite colour is",
    "import numpy as np\n",
    "The sky is",
    "One plus one is",
]
# How far (in nats, under peft's distribution) llama.cpp's greedy token may fall below peft's
# best token. Measured: on all 8 prompts, base and adapted, llama.cpp picked peft's own top token;
# its log-probabilities of its top 10 tokens differed from peft's by at most 0.39 nats (base)
# and 0.35 nats (adapted), except one prompt (1.26 nats, adapted) where the top token still agreed.
TOLERANCE_NATS = 0.5
# Measured: 0.978 over the 82 tokens of this seed (0.95 to 0.998 per prompt with seed 0).
MIN_CORRELATION = 0.9


@dataclass(frozen=True)
class Reference:
    """A peft adapter, as GGUF, and peft's own next-token log-probabilities with and without it."""

    adapter: Path
    hf_folder: Path
    tokens: list[list[int]]
    base: list[np.ndarray]
    adapted: list[np.ndarray]


@pytest.fixture(scope="module")
def reference(session_home: Path, model_path: Path, tmp_path_factory) -> Reference:
    """A rank-8 LoRA of q_proj and v_proj with random (not zero) weights from a fixed seed,
    lora_alpha 8 (scale 1). With lora_alpha 16 the adapted model is so far from the base that
    Q4 activations and the q8_0 KV cache move llama.cpp's log-probabilities by up to 5 nats."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    folder = hf_copy(Repository(session_home / "models"), DEFAULT_MODEL)
    torch.manual_seed(SEED)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    config = peft.LoraConfig(
        r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    model = peft.get_peft_model(
        transformers.AutoModelForCausalLM.from_pretrained(folder), config
    ).eval()
    work = tmp_path_factory.mktemp("lora")
    model.save_pretrained(work / "adapter")
    write_lora_gguf(work / "adapter", work / "adapter.gguf", architecture="gemma3")
    tokens = [tokenizer(p)["input_ids"] for p in PROMPTS]

    def next_token_logprobs(ids: list[int]) -> np.ndarray:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
        return torch.log_softmax(logits, -1).numpy()

    adapted = [next_token_logprobs(ids) for ids in tokens]
    with model.disable_adapter():
        base = [next_token_logprobs(ids) for ids in tokens]
    return Reference(work / "adapter.gguf", folder, tokens, base, adapted)


def import_adapter(home: Path, reference: Reference) -> Repository:
    repository = Repository(home / "models")
    repository.import_adapter(reference.adapter, ADAPTER, DEFAULT_MODEL)
    return repository


def test_the_hf_copy_is_made_once_and_kept(reference, session_home):
    names = {p.name for p in reference.hf_folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    made = (reference.hf_folder / "model.safetensors").stat()
    assert hf_copy(Repository(session_home / "models"), "gemma3-270m") == reference.hf_folder
    kept = (reference.hf_folder / "model.safetensors").stat()
    assert (kept.st_ino, kept.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)  # not made again
    assert [p.name for p in reference.hf_folder.parent.glob(".*partial*")] == []


def next_tokens(client: Client) -> list[dict[int, float]]:
    """llama.cpp's top-20 next-token log-probabilities for each prompt, greedy token first."""
    tops = []
    for prompt in PROMPTS:
        result = client.spawn(prompt, max_tokens=1, temperature=0, logprobs=20).wait()
        step = result.logprobs[0]
        tops.append(
            {step.chosen.token: step.chosen.logprob}
            | {a.token: a.logprob for a in step.alternatives}
        )
    return tops


def test_the_served_adapter_agrees_with_peft_and_changes_the_output(reference, llmasos_home):
    """llama.cpp (Q4 weights, q8 activations, q8_0 KV cache) and peft (the same weights
    dequantised to float32) cannot agree bit for bit, and a close call between two tokens may
    flip. So each greedy token is checked under peft's distribution (within TOLERANCE_NATS of
    peft's best), and the adapter's effect is checked by direction: over the tokens both
    llama.cpp lists hold, the change the adapter makes to each token's log-probability must
    correlate with the change peft computes. An adapter applied to the wrong layers, or not at
    all, or with the wrong scale fails one of these."""
    import_adapter(llmasos_home, reference)
    options = {"num_slots": 2, "context_length": 512}
    with Client(model=DEFAULT_MODEL, **options) as base, Client(model=ADAPTER, **options) as lora:
        assert [lora.kernel.tokenize(p) for p in PROMPTS] == reference.tokens
        served_base, served_lora = next_tokens(base), next_tokens(lora)
    for served, expected in ((served_base, reference.base), (served_lora, reference.adapted)):
        for top, logprobs in zip(served, expected, strict=True):
            greedy = next(iter(top))
            assert logprobs[greedy] >= logprobs.max() - TOLERANCE_NATS
    greedy_base = [next(iter(top)) for top in served_base]
    greedy_lora = [next(iter(top)) for top in served_lora]
    changed = sum(b != a for b, a in zip(greedy_base, greedy_lora, strict=True))
    assert changed >= 1  # measured: 4 of the 8 prompts
    cpp, hf = [], []
    pairs = zip(served_base, served_lora, reference.base, reference.adapted, strict=True)
    for b, a, hf_b, hf_a in pairs:
        for token in b.keys() & a.keys():
            cpp.append(a[token] - b[token])
            hf.append(hf_a[token] - hf_b[token])
    assert len(cpp) >= 40  # measured: 82
    assert np.corrcoef(cpp, hf)[0, 1] > MIN_CORRELATION


def test_an_adapter_at_scale_zero_computes_the_base_exactly(reference, model_path):
    from llmasos.engine.llamacpp import LlamaCppEngine

    def top(engine: LlamaCppEngine, prompt: str) -> tuple:
        sampler = engine.new_sampler(SamplingParams.build(temperature=0, logprobs=20), seed=0)
        engine.step([BatchItem(0, engine.tokenize(prompt), 0, sampler)])
        engine.release(0)
        return sampler.take_logprobs().top

    sizes = {"model_name": "x", "num_slots": 1, "context_length": 256}
    engines = [
        LlamaCppEngine(model_path, **sizes),
        LlamaCppEngine(model_path, **sizes, adapter_path=reference.adapter, adapter_scale=0.0),
        LlamaCppEngine(model_path, **sizes, adapter_path=reference.adapter),
    ]
    try:
        base, zero, full = ([top(e, p) for p in PROMPTS[:3]] for e in engines)
    finally:
        for engine in engines:
            engine.close()
    assert zero == base
    assert full != base


def test_an_adapter_model_serves_by_name_in_the_server_and_the_cli(reference, llmasos_home):
    repository = import_adapter(llmasos_home, reference)
    prompt = PROMPTS[-1]
    with Client(model=ADAPTER, num_slots=2, context_length=512) as client:
        expected = client.generate_text(prompt, max_tokens=8, temperature=0)
    with Client(model=DEFAULT_MODEL, num_slots=2, context_length=512) as client:
        assert client.generate_text(prompt, max_tokens=8, temperature=0) != expected

    def llmasos_run(*where: str) -> str:
        command = [LLMASOS, "run", ADAPTER, prompt, "-n", "8", "--temperature", "0", *where]
        run = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    assert llmasos_run("--local") == prompt + expected + "\n"
    server, url = start_server(home=llmasos_home)  # its own model: the default one
    try:
        body = {"model": ADAPTER, "prompt": prompt, "max_tokens": 8, "temperature": 0}
        reply = httpx.post(f"{url}/v1/completions", json=body, timeout=120).json()
        assert (reply["model"], reply["choices"][0]["text"]) == (ADAPTER, expected)
        assert llmasos_run("--url", url) == prompt + expected + "\n"
        loaded = {m["name"]: m for m in httpx.get(f"{url}/v1/models/loaded").json()["data"]}
        assert loaded[ADAPTER]["memory_bytes"] > repository.show(DEFAULT_MODEL).size_bytes
    finally:
        stop_server(server)
    listing = subprocess.run(
        [LLMASOS, "models", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines() if line.strip()}
    assert rows[ADAPTER][-1] == DEFAULT_MODEL  # LORA OVER
    with pytest.raises(ModelInUseError, match=ADAPTER):
        repository.remove(DEFAULT_MODEL)
