"""Reads what a model repository needs from a GGUF file's header, without loading the model.

GGUF layout: magic "GGUF", version, tensor count, metadata count, the metadata key/value pairs,
the tensor descriptions, then (aligned) the tensor data. The parser walks the header with
struct.unpack_from over a memory map, skipping large arrays (the vocabulary) quickly, and checks
that the file holds all the tensor data its header promises, so a truncated download is refused.

Why not the `gguf` package's GGUFReader: measured on the default model (Gemma 3 270M, a 262k-token
vocabulary, 253 MB) on this repository's 2-core machine, GGUFReader (gguf 0.19.0) took 27-30 s to
open the file, since it builds a NumPy array for every vocabulary string; this parser reads the
same header in 0.2 s. The constants (quantization block sizes, file types) come from `gguf`.

A LoRA adapter (general.type "adapter") reads like a model without hyperparameters: its context
length and KV bytes are 0, and is_adapter says what it is.

Every file is untrusted: anything malformed (a bad alignment, a truncated or nonsensical value,
nesting too deep) is a ModelFileError naming the problem, never another exception.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from llmasos.errors import ModelFileError

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
_SCALARS = {  # GGUF value type -> struct format
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAYS_UP_TO = 64  # longer arrays (vocabularies) are skipped, not decoded
_MAX_NESTING = 8  # arrays of arrays deeper than this are refused
_MALFORMED = (ValueError, TypeError, IndexError, KeyError, OverflowError, struct.error)
# Architectures llama.cpp runs without a KV cache (llama_model::create_memory returns none):
# encoders such as BERT embed a whole input in one pass and keep nothing between calls.
_NO_KV_CACHE = frozenset(
    {
        "bert",
        "jina-bert-v2",
        "jina-bert-v3",
        "nomic-bert",
        "nomic-bert-moe",
        "neo-bert",
        "eurobert",
        "modern-bert",
        "gemma-embedding",
        "wavtokenizer-dec",
        "dream",
        "llada",
        "llada-moe",
        "rnd1",
    }
)


def is_encoder(architecture: str) -> bool:
    """True for the architectures llama.cpp runs without a KV cache (embedding models)."""
    return architecture in _NO_KV_CACHE


@dataclass(frozen=True)
class GGUFInfo:
    """What a manifest records about a model file."""

    architecture: str
    name: str
    parameters: int
    quantization: str
    context_length: int
    chat_template: str | None
    license: str | None
    size_bytes: int
    kv_bytes_per_token: int  # KV cache per token with a q8_0 cache (what the engine uses); 0: none
    is_adapter: bool = False  # general.type "adapter": a LoRA adapter, run over a base model


def read_gguf_info(path: Path) -> GGUFInfo:
    """Parse `path`'s header; ModelFileError if it is not a complete GGUF file."""
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(data, path)
    except ModelFileError:
        raise
    except (OSError, *_MALFORMED) as error:  # ValueError also: mmap of an empty file
        raise ModelFileError(path, f"cannot be read as GGUF ({error})") from error


def _parse(data: mmap.mmap, path: Path) -> GGUFInfo:
    reader = _Reader(data, path)
    if reader.take(4) != MAGIC:
        raise ModelFileError(path, "is not a GGUF file (no GGUF magic number)")
    version = reader.unpack("<I")
    if version not in (2, 3):
        raise ModelFileError(path, f"has GGUF version {version}; versions 2 and 3 are supported")
    tensor_count, kv_count = reader.unpack("<Q"), reader.unpack("<Q")
    meta = {reader.string(): reader.value() for _ in range(kv_count)}
    tensors = [reader.tensor() for _ in range(tensor_count)]
    alignment = meta.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelFileError(
            path, f"has general.alignment {alignment!r}; it must be a power of two (default 32)"
        )
    data_start = -(-reader.offset // alignment) * alignment
    end = max((offset + nbytes for offset, nbytes, _ in tensors), default=0)
    if data_start + end > len(data):
        raise ModelFileError(
            path, f"is truncated: its header needs {data_start + end} bytes, it has {len(data)}"
        )
    return _info(meta, tensors, len(data), path)


def _info(
    meta: dict[str, Any], tensors: list[tuple[int, int, int]], size: int, path: Path
) -> GGUFInfo:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelFileError(path, "has no general.architecture; is it a model?")

    def arch_int(key: str, default: int = 0) -> int:
        value = meta.get(f"{arch}.{key}", default)
        return int(value[0] if isinstance(value, list) else value)

    heads = arch_int("attention.head_count", 1) or 1
    head_dim = arch_int("embedding_length") // heads
    kv_heads = arch_int("attention.head_count_kv", heads) or heads
    per_layer = kv_heads * (
        arch_int("attention.key_length", head_dim) + arch_int("attention.value_length", head_dim)
    )
    q8_0 = GGML_QUANT_SIZES[GGMLQuantizationType.Q8_0]
    file_type = meta.get("general.file_type")
    try:
        quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        quantization = "unknown"
    return GGUFInfo(
        architecture=arch,
        name=str(meta.get("general.name", path.stem)),
        parameters=sum(n for _, _, n in tensors),
        quantization=quantization,
        context_length=arch_int("context_length"),
        chat_template=meta.get("tokenizer.chat_template"),
        license=meta.get("general.license"),
        size_bytes=size,
        kv_bytes_per_token=0
        if arch in _NO_KV_CACHE
        else arch_int("block_count") * per_layer * q8_0[1] // q8_0[0],
        is_adapter=meta.get("general.type") == "adapter",
    )


class _Reader:
    def __init__(self, data: mmap.mmap, path: Path) -> None:
        self.data, self.path, self.offset = data, path, 0

    def take(self, n: int) -> bytes:
        if self.offset + n > len(self.data):
            raise ModelFileError(self.path, "is truncated inside its header")
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return self.take(self.unpack("<Q")).decode("utf-8", "replace")

    def value(self, kind: int | None = None, depth: int = 0) -> Any:
        kind = self.unpack("<I") if kind is None else kind
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            if depth >= _MAX_NESTING:
                raise ModelFileError(self.path, f"nests arrays more than {_MAX_NESTING} deep")
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            if count <= _KEEP_ARRAYS_UP_TO:
                return [self.value(item_kind, depth + 1) for _ in range(count)]
            self._skip_array(item_kind, count, depth + 1)
            return None
        raise ModelFileError(self.path, f"has an unknown metadata value type {kind}")

    def _skip_array(self, kind: int, count: int, depth: int) -> None:
        if kind in _SCALARS:
            self.take(struct.calcsize(_SCALARS[kind]) * count)
        elif kind == _STRING:
            for _ in range(count):  # struct.error past the end: a malformed file
                self.take(struct.unpack_from("<Q", self.data, self.offset)[0] + 8)
        else:
            for _ in range(count):
                self.value(kind, depth)

    def tensor(self) -> tuple[int, int, int]:
        """(data offset, byte size, element count) of the next tensor description."""
        self.string()
        dims = [self.unpack("<Q") for _ in range(self.unpack("<I"))]
        kind, offset = self.unpack("<I"), self.unpack("<Q")
        try:
            block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
        except (ValueError, KeyError) as error:
            raise ModelFileError(self.path, f"has a tensor of unknown type {kind}") from error
        elements = 1
        for dim in dims:
            elements *= dim
        return offset, elements // block * block_bytes, elements
