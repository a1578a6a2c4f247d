"""POST /v1/embeddings on a real server with the default embedding model, through the official
openai package and raw HTTP."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest

PASSAGES = [
    "The cat sat on the warm windowsill and purred in the afternoon sun.",
    "Interest rates rose again as the central bank fought inflation.",
    "The volcano erupted, covering the nearby villages in grey ash.",
    "The team scored in the final minute and won the championship.",
]
QUERIES = [
    "a pet resting in the sunlight",
    "monetary policy and rising prices",
    "lava and ash from a mountain",
    "a last-second victory in sport",
]


@pytest.fixture(scope="module")
def oai(url):
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def vectors(oai, texts, **options) -> np.ndarray:
    reply = oai.embeddings.create(model="all-minilm-l6-v2", input=texts, **options)
    count = 1 if isinstance(texts, str) else len(texts)
    assert [d.index for d in reply.data] == list(range(count))
    return np.array([d.embedding for d in reply.data])


def test_the_same_text_gives_the_same_vector_and_a_batch_equals_one_by_one(oai):
    batch = vectors(oai, PASSAGES)
    again = vectors(oai, PASSAGES)
    assert np.array_equal(batch, again)  # deterministic, bit for bit
    alone = np.vstack([vectors(oai, text) for text in PASSAGES])
    # llama.cpp sums a batched pass in another order: equal to 1e-4, not to the bit
    assert np.abs(batch - alone).max() < 5e-4
    assert batch.shape == (4, 384)
    assert np.allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_each_query_is_closest_to_its_own_passage(oai):
    similarity = vectors(oai, QUERIES) @ vectors(oai, PASSAGES).T
    assert list(similarity.argmax(axis=1)) == [0, 1, 2, 3]


def test_base64_encoding_carries_the_same_floats(url, oai):
    floats = vectors(oai, PASSAGES[0])[0]
    body = {"input": PASSAGES[0], "encoding_format": "base64"}
    reply = httpx.post(f"{url}/v1/embeddings", json=body, timeout=60).json()
    decoded = np.frombuffer(base64.b64decode(reply["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats, atol=1e-7)
    assert reply["model"] == "all-minilm-l6-v2:f32"
    assert reply["usage"]["prompt_tokens"] == reply["usage"]["total_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        ({"input": []}, 400, "input", "at least 1 items"),
        ({"input": ""}, 400, "input", "at least 1 characters"),
        ({"input": [1, 2, 3]}, 400, "input", "string"),
        ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format", "float"),
        ({"input": "word " * 700}, 422, "input", "512"),
        ({"input": "x", "dimensions": 100}, 422, "dimensions", "384"),
        ({"input": "x", "model": "gemma3-270m"}, 422, "model", "generates text"),
    ],
)
def test_bad_embedding_requests_get_an_error_naming_the_field(url, body, status, param, fragment):
    """400: the request breaks the published schema; 422: it is well formed but this model
    cannot serve it."""
    response = httpx.post(f"{url}/v1/embeddings", json=body, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and fragment in error["message"], error


def test_an_embedding_model_cannot_generate(url):
    body = {"model": "all-minilm-l6-v2", "prompt": "Hello", "max_tokens": 2}
    response = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert response.status_code == 422
    assert "embedding model" in response.json()["error"]["message"]
