"""Derived data, cached by content: the same input is never processed twice.

A derived value (an embedding of a text by a model, the chunks of a document, the fact that a
document version was indexed into some memory) is stored under the SHA-256 of what it was
derived from and how, in the first shard's `derived` table, shared by every owner: equal inputs
give equal outputs whoever asks. Values that carry text (chunks) are sealed when encryption is
on; embeddings and markers carry none.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from llmasos.security.crypto import Sealer
from llmasos.storage.sharding import ShardedStore

DERIVED_OWNER = "derived"  # the key sealed values use


def _framed(kind: str, parts: Sequence[str | bytes]) -> bytes:
    """kind and parts, each length-prefixed, so no two inputs frame the same."""
    out = bytearray()
    for part in (kind, *parts):
        data = part.encode() if isinstance(part, str) else part
        out += len(data).to_bytes(8, "big") + data
    return bytes(out)


class DerivedCache:
    """Content-addressed values; counts its hits and misses (for the benchmark and tests)."""

    def __init__(self, store: ShardedStore, sealer: Sealer | None = None) -> None:
        self._store = store
        self._sealer = sealer
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def key(self, kind: str, *parts: str | bytes) -> str:
        """The key of what `parts` derive: their SHA-256, or with encryption on a keyed HMAC
        (a plain hash of a text would let anyone holding the database confirm a guess)."""
        framed = _framed(kind, parts)
        if self._sealer is not None:
            return f"{kind}:{self._sealer.digest(DERIVED_OWNER, framed)}"
        return f"{kind}:{hashlib.sha256(framed).hexdigest()}"

    def get(self, key: str, *, sealed: bool = False) -> bytes | None:
        value = self._store.catalog.memory.derived(key)
        with self._lock:
            self.hits += value is not None
            self.misses += value is None
        if value is not None and sealed and self._sealer is not None:
            value = self._sealer.open(DERIVED_OWNER, key.encode(), value)
        return value

    def put(self, key: str, value: bytes, *, sealed: bool = False) -> None:
        if sealed and self._sealer is not None:
            value = self._sealer.seal(DERIVED_OWNER, key.encode(), value)
        self._store.catalog.memory.put_derived(key, key.split(":", 1)[0], value)

    def embedding(
        self, embed: Callable[[Sequence[str]], Sequence[Any]]
    ) -> Callable[[Sequence[str]], list[np.ndarray]]:
        """`embed` with its vectors cached by (model, text); texts it has seen are not
        embedded again. Without a model_name attribute the vectors are not cached."""
        model = getattr(embed, "model_name", None)
        if model is None:
            return lambda texts: [np.asarray(v, dtype=np.float32) for v in embed(texts)]

        def cached(texts: Sequence[str]) -> list[np.ndarray]:
            keys = [self.key("embedding", model, text) for text in texts]
            found = [self.get(key) for key in keys]
            missing = [i for i, value in enumerate(found) if value is None]
            vectors = embed([texts[i] for i in missing]) if missing else []
            for i, vector in zip(missing, vectors, strict=True):
                found[i] = np.asarray(vector, dtype=np.float32).tobytes()
                self.put(keys[i], found[i])  # type: ignore[arg-type]
            return [np.frombuffer(value, dtype=np.float32) for value in found]  # type: ignore[arg-type]

        cached.model_name = model  # type: ignore[attr-defined]
        return cached
