"""Documents into memory and the derived-data cache: a file is chunked into archival entries
that search finds; the same version is never indexed twice; equal inputs are never processed
twice (chunks by content, embeddings by model and text)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from llmasos.errors import InvalidRequestError
from llmasos.storage.documents import chunk_text
from llmasos.storage.paths import Principal
from llmasos.storage.service import Storage
from tests.integration.storage.conftest import Memo

TIDES = (
    "Tides are the rise and fall of sea levels caused by the gravity of the Moon and the Sun."
    "\n\nSpring tides happen at full and new moon, when the Sun and Moon pull in line.\n\n"
    + "Unrelated filler about gardening and soil and compost. " * 40
    + "\n\nThe harbour gate at Kestrel Bay closes two hours before low water."
)


class Counting:
    """The real model behind a name the cache can key on, counting the texts it embeds."""

    model_name = "all-minilm-l6-v2:f32"

    def __init__(self, memo: Memo) -> None:
        self.memo = memo
        self.texts = 0

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        self.texts += len(texts)
        return self.memo(texts)


def test_chunks_keep_every_word_within_the_limit():
    chunks = chunk_text(TIDES, max_chars=300)
    assert all(len(chunk) <= 300 for chunk in chunks) and len(chunks) > 3
    assert " ".join(chunks).split() == TIDES.split()


def test_a_file_is_indexed_once_and_its_passages_found(storage: Storage, memo: Memo):
    counting = Counting(memo)
    alice = Principal("alice")
    storage.files(alice).write("papers/tides.md", TIDES)
    memory = storage.memory(alice, counting)
    report = memory.index("papers/tides.md")
    assert (report.version, report.already_indexed) == (1, False)
    assert report.chunks == memory.count() == len(chunk_text(TIDES))
    best = memory.search("When does the harbour gate close?", k=1)[0]
    assert "Kestrel Bay closes two hours" in best.text
    assert best.text.startswith("[papers/tides.md@1]")
    embedded = counting.texts
    again = memory.index("papers/tides.md")
    assert again.already_indexed and memory.count() == report.chunks
    assert counting.texts == embedded  # nothing embedded the second time


def test_equal_inputs_are_processed_once_whoever_asks(storage: Storage, memo: Memo):
    counting = Counting(memo)
    for owner in ("alice", "bob"):
        storage.files(Principal(owner)).write("copy.md", TIDES)
    alice = storage.memory(Principal("alice"), counting)
    alice.index("copy.md")
    embedded, hits = counting.texts, storage.derived.hits
    bob = storage.memory(Principal("bob"), counting)
    assert bob.index("copy.md").chunks == alice.count()
    assert storage.derived.hits > hits  # bob's chunks and vectors came from the cache
    assert counting.texts == embedded
    assert bob.search("spring tides", k=1)[0].text == alice.search("spring tides", k=1)[0].text


def test_binary_files_are_refused_by_name(storage: Storage, memo: Memo):
    storage.files(Principal("alice")).write("blob.bin", bytes(range(256)))
    with pytest.raises(InvalidRequestError, match=r"blob\.bin is not UTF-8 text") as error:
        storage.memory(Principal("alice"), memo).index("blob.bin")
    assert error.value.field == "path"
