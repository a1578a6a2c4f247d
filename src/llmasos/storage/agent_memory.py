"""An agent's memory in three tiers, like an OS's registers, RAM and disk:

    core      small labelled blocks always put in the agent's prompt, editable by the agent
    recall    the whole conversation log, in order, searchable by meaning
    archival  facts the agent chose to keep, searched by meaning (vector search: sqlite-vec on
              SQLite, pgvector on PostgreSQL)

Texts are embedded by an injected function (the default embedding model, all-MiniLM-L6-v2);
with encryption on, texts and core blocks are sealed (embeddings stay searchable and are not).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llmasos.errors import InvalidRequestError
from llmasos.security.crypto import Sealer
from llmasos.storage.paths import Principal, check_name
from llmasos.storage.records import MemoryEntry
from llmasos.storage.sharding import ShardedStore

Embed = Callable[[Sequence[str]], Sequence[Any]]  # texts -> one vector each

MAX_TEXT_CHARS = 4_000  # an entry; store a long document as several
MAX_CORE_CHARS = 8_000  # per block: core memory is paid for in every prompt
MAX_SEARCH_K = 100
MAX_ENTRY_KEY = 2**52
RECALL, ARCHIVAL = "recall", "archival"
ROLES = ("system", "user", "assistant", "tool", "note")


@dataclass(frozen=True)
class MemoryItem:
    key: int
    tier: str
    seq: int
    role: str
    text: str
    created_at: float
    distance: float | None = None  # cosine distance to the query, for search hits

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MemoryItem:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def _bound(scope: str, tier: str, key: int, role: str) -> str:
    """What a sealed entry is bound to: its place and its role (a user turn cannot be made
    into a system turn without failing its check)."""
    return f"memory\x00{scope}\x00{tier}\x00{key}\x00{role}"


def _check_text(field: str, text: object, limit: int = MAX_TEXT_CHARS) -> str:
    if not isinstance(text, str) or not text:
        raise InvalidRequestError(field, "must be a non-empty string")
    if len(text) > limit:
        raise InvalidRequestError(field, f"must be at most {limit} characters, got {len(text)}")
    return text


class AgentMemory:
    """One principal's memory (an agent's, or an owner's own)."""

    def __init__(
        self,
        store: ShardedStore,
        principal: Principal,
        embed: Embed | None,
        sealer: Sealer | None = None,
        quota_bytes: int | None = None,
    ) -> None:
        self._store = store
        self.principal = principal
        self._embed = embed
        self._sealer = sealer
        self._quota = quota_bytes  # the owner's storage quota: memory counts with its files
        self.scope = principal.name
        self.indexer: Callable[[str], Any] | None = None  # set by Storage.memory

    def index(self, path: str) -> Any:
        """Chunk the file at `path` (UTF-8 text, as this principal reads it) into archival
        entries; an IndexReport. A version already indexed here is not added twice."""
        if self.indexer is None:
            raise InvalidRequestError("path", "this memory has no file system to index from")
        return self.indexer(path)

    def _seal(self, bound: str, text: str) -> bytes:
        data = text.encode()
        if self._sealer is None:
            return data
        return self._sealer.seal(self.principal.owner, bound.encode(), data)

    def _open(self, bound: str, stored: bytes) -> str:
        if self._sealer is not None:
            stored = self._sealer.open(self.principal.owner, bound.encode(), stored)
        return stored.decode()

    # -- core -----------------------------------------------------------------------------

    def core(self, label: str | None = None, text: str | None = None) -> dict[str, str]:
        """The core blocks; with `label` and `text`, set that block first (text "" removes)."""
        if label is not None:
            check_name("label", label)
            if text is None:
                raise InvalidRequestError("text", "give the block's text (or '' to remove it)")
            with self._store.routed(self.principal.owner) as shard:
                if text == "":
                    shard.memory.delete_core(self.principal.owner, self.scope, label)
                else:
                    _check_text("text", text, MAX_CORE_CHARS)
                    sealed = self._seal(f"core\x00{self.scope}\x00{label}", text)
                    shard.memory.set_core(
                        self.principal.owner, self.scope, label, sealed, self._quota
                    )
        with self._store.routed(self.principal.owner) as shard:
            blocks = shard.memory.core(self.scope)
        return {k: self._open(f"core\x00{self.scope}\x00{k}", v) for k, v in blocks.items()}

    # -- recall and archival --------------------------------------------------------------

    def _add(self, tier: str, items: Sequence[tuple[str, str]]) -> list[MemoryItem]:
        now = time.time()
        entries = []
        for role, text in items:
            key = secrets.randbits(52) + 1  # exact in JSON doubles
            sealed = self._seal(_bound(self.scope, tier, key, role), text)
            entries.append(
                MemoryEntry(key, self.principal.owner, self.scope, tier, 0, role, sealed, now)
            )
        vectors = self._embed([text for _, text in items]) if self._embed else None
        with self._store.routed(self.principal.owner) as shard:
            seqs = shard.memory.add_entries(entries, vectors, self._quota)
        return [
            MemoryItem(e.key, tier, seq, role, text, now)
            for e, seq, (role, text) in zip(entries, seqs, items, strict=True)
        ]

    def store(self, text: str) -> MemoryItem:
        """Keep `text` in archival memory."""
        return self._add(ARCHIVAL, [("note", _check_text("text", text))])[0]

    def store_many(self, texts: Sequence[str]) -> list[MemoryItem]:
        return self._add(ARCHIVAL, [("note", _check_text("text", t)) for t in texts])

    def log(self, role: str, text: str) -> MemoryItem:
        """Append a turn to the recall log (the conversation)."""
        if role not in ROLES:
            raise InvalidRequestError("role", f"must be one of {', '.join(ROLES)}")
        return self._add(RECALL, [(role, _check_text("text", text))])[0]

    def _items(self, tier: str, entries: Sequence[tuple[MemoryEntry, float | None]]) -> list:
        return [
            MemoryItem(
                e.key, tier, e.seq, e.role,
                self._open(_bound(self.scope, tier, e.key, e.role), e.text),
                e.created_at, distance,
            )
            for e, distance in entries
        ]  # fmt: skip

    def recall(self, first_seq: int = 1, limit: int | None = None) -> list[MemoryItem]:
        """The recall log from turn `first_seq`, in order."""
        with self._store.routed(self.principal.owner) as shard:
            entries = shard.memory.entries(self.scope, RECALL, first_seq=first_seq, limit=limit)
        return self._items(RECALL, [(e, None) for e in entries])

    def search(
        self, query: str, k: int = 5, *, tier: str = ARCHIVAL, max_seq: int | None = None
    ) -> list[MemoryItem]:
        """The k entries of `tier` (archival or recall) nearest in meaning to `query` (only
        those up to seq `max_seq`: e.g. the turns paged out of a conversation)."""
        _check_text("query", query)
        if tier not in (RECALL, ARCHIVAL):
            raise InvalidRequestError("tier", "must be 'recall' or 'archival'")
        if not isinstance(k, int) or not 1 <= k <= MAX_SEARCH_K:
            raise InvalidRequestError("k", f"must be an integer from 1 to {MAX_SEARCH_K}")
        if self._embed is None:
            raise InvalidRequestError("query", "search needs an embedding model; none is set")
        vector = self._embed([query])[0]
        with self._store.routed(self.principal.owner) as shard:
            hits = shard.memory.search(self.scope, tier, vector, k, max_seq)
        return self._items(tier, hits)

    def forget(self, keys: Sequence[int], *, tier: str = ARCHIVAL) -> int:
        """Delete entries of `tier` by key (freeing their quota); how many there were."""
        if tier not in (RECALL, ARCHIVAL):
            raise InvalidRequestError("tier", "must be 'recall' or 'archival'")
        if not isinstance(keys, Sequence) or not all(isinstance(k, int) for k in keys):
            raise InvalidRequestError("keys", "must be a list of entry keys (integers)")
        with self._store.routed(self.principal.owner) as shard:
            return shard.memory.forget(self.principal.owner, self.scope, tier, keys)

    def count(self, tier: str = ARCHIVAL) -> int:
        with self._store.routed(self.principal.owner) as shard:
            return shard.memory.count(self.scope, tier)
