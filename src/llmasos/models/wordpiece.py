"""A BERT WordPiece vocabulary (tokenizer.json) written into a GGUF the way llama.cpp's own
converter writes it: tokens in id order in llama.cpp's "phantom space" spelling (a word-initial
piece gets a U+2581 prefix, a "##" continuation loses its "##", control tokens stay as they are),
token types, special token ids and the BertNormalizer's flags (see models/convert_bert.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf

from llmasos.errors import ModelFileError

TOKENIZER_PRE = "jina-v2-en"
_KEY_LOWERCASE = "tokenizer.ggml.normalizer.lowercase"  # newer than gguf 0.19's Keys
_KEY_STRIP_ACCENTS = "tokenizer.ggml.normalizer.strip_accents"
_SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "mask")


def add_wordpiece_vocabulary(
    writer: gguf.GGUFWriter, folder: Path, config: dict[str, Any], tokenizer: Any
) -> None:
    try:
        tokens, types = _wordpiece_vocabulary(folder, config, tokenizer)
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise ModelFileError(folder / "tokenizer.json", f"is malformed ({error!r})") from error
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre(TOKENIZER_PRE)
    writer.add_token_list(
        [_phantom(token, kind) for token, kind in zip(tokens, types, strict=True)]
    )
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, special_token_types=_SPECIAL_TYPES, n_vocab=len(tokens))
    special.add_to_gguf(writer, quiet=True)
    normalizer = tokenizer.get("normalizer") or {}
    if normalizer.get("type") == "BertNormalizer":
        if isinstance(normalizer.get("lowercase"), bool):
            writer.add_bool(_KEY_LOWERCASE, normalizer["lowercase"])
        if isinstance(normalizer.get("strip_accents"), bool):
            writer.add_bool(_KEY_STRIP_ACCENTS, normalizer["strip_accents"])


def _wordpiece_vocabulary(
    folder: Path, config: dict[str, Any], tokenizer: Any
) -> tuple[list[str], list[int]]:
    """Tokens and token types in id order, as TextModel.get_vocab_base builds them."""
    model = tokenizer.get("model") if isinstance(tokenizer, dict) else None
    if not isinstance(model, dict) or model.get("type") != "WordPiece":
        kind = model.get("type") if isinstance(model, dict) else None
        raise ModelFileError(
            folder, f"has a {kind or 'missing'} tokenizer model; BERT needs WordPiece"
        )
    by_id = {token_id: token for token, token_id in model.get("vocab", {}).items()}
    added = {
        entry["id"]: entry
        for entry in tokenizer.get("added_tokens", [])
        if isinstance(entry, dict) and isinstance(entry.get("id"), int)
    }
    by_id.update({token_id: entry["content"] for token_id, entry in added.items()})
    if not by_id:
        raise ModelFileError(folder, "has an empty WordPiece vocabulary in tokenizer.json")
    size = config.get("vocab_size", len(by_id))
    if max(by_id) >= size:
        raise ModelFileError(
            folder, f"has token id {max(by_id)} in tokenizer.json beyond vocab_size {size}"
        )
    tokens: list[str] = []
    types: list[int] = []
    for token_id in range(size):
        token = by_id.get(token_id)
        if token is None:
            tokens.append(f"[PAD{token_id}]")
            types.append(gguf.TokenType.UNUSED)
        elif token_id in added:
            if added[token_id].get("special") or _looks_special(token):
                types.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")  # pre-normalized user-defined spaces
                types.append(gguf.TokenType.USER_DEFINED)
            tokens.append(token)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _phantom(token: str, kind: int) -> str:
    """llama.cpp's WordPiece spelling: U+2581 marks a word start, "##" continuations lose it."""
    if kind == gguf.TokenType.CONTROL:
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def _looks_special(token: str) -> bool:
    """TextModel.does_token_look_special: added tokens some models forget to mark special."""
    return (
        token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
        or (token.startswith("<|") and token.endswith("|>"))
        or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
        or (token.startswith("<unused") and token.endswith(">"))
    )
