"""POST /v1/embeddings: OpenAI's embeddings route, on an embedding model from the repository
(the default: all-MiniLM-L6-v2, imported on first use)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from llmasos.errors import InvalidRequestError, UnprocessableError
from llmasos.models.default import DEFAULT_EMBEDDING_MODEL
from llmasos.server.openai_api import models_of
from llmasos.server.schemas import EmbeddingRequest

router = APIRouter()

MAX_INPUTS = 2048  # per request, as OpenAI's


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS:
        raise InvalidRequestError("input", f"must hold 1 to {MAX_INPUTS} texts, got {len(texts)}")
    model = body.model or DEFAULT_EMBEDDING_MODEL
    request.state.capabilities.check_model(model)  # the key's models, embedding ones too
    name, vectors, tokens = await run_in_threadpool(embed, request, model, texts)
    if body.dimensions is not None and body.dimensions != len(vectors[0]):
        raise UnprocessableError(
            "dimensions", f"{name} gives {len(vectors[0])} dimensions and cannot give others"
        )
    data = [
        {"object": "embedding", "index": i, "embedding": encoded(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": name, "usage": usage}


def embed(request: Request, model: str, texts: list[str]) -> tuple[str, list, int]:
    """(model name, one vector per text, tokens read); blocking: call it in a worker thread."""
    with models_of(request).lease(model) as loaded:
        embedder = loaded.embedder
        vectors = embedder.embed(texts)
        tokens = sum(len(embedder.tokenize(text)) for text in texts)
    return loaded.name, vectors, tokens


def encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    """Floats, or OpenAI's base64 form: the float32 bytes, little-endian."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector.astype(float).tolist()
