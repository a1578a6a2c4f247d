"""Documents into memory: a file's text cut into chunks and stored as archival entries, so
search finds passages of it. Chunks are cached by the file version's digest, and a version
already indexed into a memory is not indexed again.

    report = index_file(files, memory, derived, "papers/tides.md")   # IndexReport
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from llmasos.errors import InvalidRequestError
from llmasos.storage.agent_memory import AgentMemory
from llmasos.storage.derived import DerivedCache
from llmasos.storage.fs import FileSystemView

CHUNK_CHARS = 1200
MAX_INDEX_BYTES = 1024 * 1024  # about 900 chunks, each embedded
CHUNKER = "paragraphs-v1"  # change when chunk_text changes: cached chunks are keyed by it


@dataclass(frozen=True)
class IndexReport:
    path: str
    version: int
    chunks: int
    already_indexed: bool  # this version was in this memory already: nothing was added

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def chunk_text(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs packed into chunks of at most `max_chars`; a longer paragraph is cut at
    sentence ends, then at spaces, then anywhere. Nothing is left out."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        while len(paragraph) > max_chars:
            cut = max(paragraph.rfind(". ", 0, max_chars) + 1, paragraph.rfind(" ", 0, max_chars))
            cut = cut if cut > max_chars // 2 else max_chars
            pieces.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if paragraph:
            pieces.append(paragraph)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= max_chars:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    return chunks


def index_file(
    files: FileSystemView, memory: AgentMemory, derived: DerivedCache, path: str
) -> IndexReport:
    """Chunk the file's latest version (UTF-8 text) into `memory`'s archival entries."""
    data, info = files.read_with_info(path)
    if len(data) > MAX_INDEX_BYTES:
        raise InvalidRequestError(
            "path", f"{info.path} has {len(data)} bytes; at most {MAX_INDEX_BYTES} are indexed "
            "at once (split the document into files)",
        )  # fmt: skip
    marker = derived.key("indexed", memory.scope, info.path, info.digest, CHUNKER)
    chunks_key = derived.key("chunks", info.digest, CHUNKER)
    if derived.get(marker) is not None:
        count = json.loads(derived.get(chunks_key, sealed=True) or b"[]")
        return IndexReport(info.path, info.version, len(count), already_indexed=True)
    cached = derived.get(chunks_key, sealed=True)
    if cached is None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise InvalidRequestError("path", f"{info.path} is not UTF-8 text") from None
        chunks = chunk_text(text)
        derived.put(chunks_key, json.dumps(chunks).encode(), sealed=True)
    else:
        chunks = json.loads(cached)
    if chunks:
        memory.store_many([f"[{info.path}@{info.version}] {chunk}" for chunk in chunks])
    derived.put(marker, b"1")
    return IndexReport(info.path, info.version, len(chunks), already_indexed=False)
