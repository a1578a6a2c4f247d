"""Embedding functions for agent memory: the default embedding model (all-MiniLM-L6-v2), from a
server's model manager or loaded once in-process.

A text longer than the model reads is embedded whole, never cut: it is split into pieces the
model can read, and its vector is the normalised mean of theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from llmasos.engine.base import Embedder
from llmasos.models.default import DEFAULT_EMBEDDING_MODEL, ensure_default_embedding_model
from llmasos.models.repository import Repository
from llmasos.runtime.manager import ModelManager

Embed = Callable[[Sequence[str]], list[np.ndarray]]


def _pieces(embedder: Embedder, text: str) -> list[str]:
    """`text` split (at spaces where it can be) into pieces the model reads whole."""
    limit = embedder.info.max_input_tokens
    tokens = len(embedder.tokenize(text))
    if tokens <= limit:
        return [text]
    count = -(-tokens // max(1, int(limit * 0.8)))  # pieces of about 80% of the limit
    size = -(-len(text) // count)
    pieces, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        space = text.rfind(" ", start + size // 2, end) if end < len(text) else -1
        end = space + 1 if space > start else end
        pieces += _pieces(embedder, text[start:end]) if end - start < len(text) else [text]
        start = end
    return pieces


def embed_whole(embedder: Embedder, texts: Sequence[str]) -> list[np.ndarray]:
    """One normalised vector per text, whatever its length (one batch for all pieces)."""
    split = [_pieces(embedder, text) for text in texts]
    flat = embedder.embed([piece for pieces in split for piece in pieces])
    vectors, start = [], 0
    for pieces in split:
        mean = np.mean(np.stack(flat[start : start + len(pieces)]), axis=0)
        vectors.append(mean / (np.linalg.norm(mean) or 1.0))
        start += len(pieces)
    return vectors


def manager_embed(models: ModelManager) -> Embed:
    """Embeddings from the server's default embedding model (loaded on first use)."""

    def embed(texts: Sequence[str]) -> list[np.ndarray]:
        with models.lease(DEFAULT_EMBEDDING_MODEL) as loaded:
            return embed_whole(loaded.embedder, texts)

    embed.model_name = DEFAULT_EMBEDDING_MODEL  # type: ignore[attr-defined]  # caches key on it
    return embed


class LocalEmbed:
    """The default embedding model in this process, imported and loaded on the first call."""

    model_name = DEFAULT_EMBEDDING_MODEL

    def __init__(self, home: Path) -> None:
        self._home = home
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        with self._lock:
            if self._embedder is None:
                from llmasos.engine.embedder import LlamaCppEmbedder

                repository = Repository(self._home / "models")
                ensure_default_embedding_model(repository)
                path = repository.blob_path(repository.show(DEFAULT_EMBEDDING_MODEL))
                self._embedder = LlamaCppEmbedder(path, model_name=DEFAULT_EMBEDDING_MODEL)
        return embed_whole(self._embedder, texts)

    def close(self) -> None:
        with self._lock:
            if self._embedder is not None:
                self._embedder.close()  # type: ignore[attr-defined]
                self._embedder = None
