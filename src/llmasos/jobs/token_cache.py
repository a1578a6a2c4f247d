"""Tokenised job data, cached by content hash: a second job on the same data, model and sample
limit reads the token ids back instead of tokenising again (its status says data_cached).

    $LLMASOS_HOME/jobs/cache/<sha256 of data, tokenizer, limit, format>.json

With a master key the entry is sealed under the owner's key and named by a keyed digest, so
neither its content nor its name lets anyone confirm a guess of the data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmasos.errors import InvalidRequestError
from llmasos.jobs.job_files import Seal
from llmasos.jobs.task_data import Record, read_records

FORMAT = 1  # bump when the way records become tokens changes


@dataclass(frozen=True)
class Sample:
    ids: list[int]
    prompt_tokens: int  # the leading tokens the loss leaves out (0 for a text record)


def cache_key(data: bytes, tokenizer_id: str, max_tokens: int) -> str:
    digest = hashlib.sha256()
    for part in (str(FORMAT), tokenizer_id, str(max_tokens)):
        digest.update(part.encode() + b"\0")
    digest.update(data)
    return digest.hexdigest()


def tokenised(
    data: bytes,
    tokenizer: Any,
    tokenizer_id: str,
    max_tokens: int,
    cache: Path,
    seal: Seal,
    tokenise_all: Callable[[list[Record]], list[Sample]] | None = None,
) -> tuple[list[Sample], bool]:
    """The samples of `data` and whether they came from the cache (`seal`: the owner's);
    `tokenise_all` does the records when they are not (here, one by one, by default)."""
    key = cache_key(data, tokenizer_id, max_tokens)
    path = cache / f"{seal.file_name(key)}.json"
    if path.is_file():
        rows = json.loads(seal.read(path, f"cache/{key}"))
        return [Sample(ids, prompt) for ids, prompt in rows], True
    records = read_records(data)
    if tokenise_all is None:
        samples = [to_sample(r, tokenizer, max_tokens) for r in records]
    else:
        samples = tokenise_all(records)
    cache.mkdir(parents=True, exist_ok=True)
    rows = json.dumps([[s.ids, s.prompt_tokens] for s in samples]).encode()
    seal.write(path, f"cache/{key}", rows)
    return samples, False


def to_sample(record: Record, tokenizer: Any, max_tokens: int) -> Sample:
    """A record's token ids; a chat record's prompt (all but its last message) is left out of
    the loss. Longer than `max_tokens` is refused, naming the line: nothing is cut."""
    if record.text is not None:
        ids, prompt = list(tokenizer(record.text).input_ids), 0
    else:
        messages = [{"role": r, "content": c} for r, c in record.messages or ()]
        ids = _chat_ids(tokenizer, messages, prompt_only=False)
        prompt = len(_chat_ids(tokenizer, messages[:-1], prompt_only=True))
    if len(ids) > max_tokens:
        raise InvalidRequestError(
            "data",
            f"line {record.line}: {len(ids)} tokens; max_tokens_per_sample is {max_tokens}",
        )
    return Sample(ids, prompt)


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]], *, prompt_only: bool) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=prompt_only
        )
        return list(tokenizer(text, add_special_tokens=False).input_ids)
    lines = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return list(tokenizer(lines + ("assistant: " if prompt_only else "")).input_ids)
