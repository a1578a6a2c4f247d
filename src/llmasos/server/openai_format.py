"""The shapes of OpenAI replies: choices of completions and chat completions, whole and as
stream chunks, with log-probabilities and tool calls, and usage.

A Style knows one endpoint's shapes; Reply (server/openai_reply.py) drives it over the processes
serving a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmasos.kernel.process import Result, StepLogprobs, TokenProb
from llmasos.toolcalls import CALL_OPEN, ToolCall, parse_calls


def token_text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


def chat_logprobs(steps: Sequence[StepLogprobs]) -> dict[str, Any]:
    def entry(prob: TokenProb) -> dict[str, Any]:
        return {"token": token_text(prob.piece), "logprob": prob.logprob, "bytes": list(prob.piece)}

    return {
        "content": [
            {**entry(s.chosen), "top_logprobs": [entry(a) for a in s.alternatives]} for s in steps
        ]
    }


def completion_logprobs(steps: Sequence[StepLogprobs], offset: int = 0) -> dict[str, Any]:
    """OpenAI's legacy shape: parallel lists, text offsets counted from `offset`."""
    tokens = [token_text(s.chosen.piece) for s in steps]
    offsets, position = [], offset
    for token in tokens:
        offsets.append(position)
        position += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [s.chosen.logprob for s in steps],
        "top_logprobs": [{token_text(a.piece): a.logprob for a in s.alternatives} for s in steps],
        "text_offset": offsets,
    }


def usage(results: Sequence[Result], parents: Sequence[bool]) -> dict[str, Any]:
    """Prompt tokens count once per prompt (forks share their parent's), completions all."""
    prompt = sum(r.usage.prompt_tokens for r, p in zip(results, parents, strict=True) if p)
    cached = sum(r.usage.cached_tokens for r, p in zip(results, parents, strict=True) if p)
    completion = sum(r.usage.completion_tokens for r in results)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def calls_json(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls
    ]


@dataclass
class CompletionStyle:
    """/v1/completions: `text` choices; `logprobs` alternatives per token, or None."""

    logprobs: int | None
    object_name: str = "text_completion"
    id_prefix: str = "cmpl"
    _offsets: dict[int, int] = field(default_factory=dict)

    def whole(self, index: int, result: Result) -> dict[str, Any]:
        logprobs = None if result.logprobs is None else completion_logprobs(result.logprobs)
        reason = result.finish_reason.value
        return {"index": index, "text": result.text, "logprobs": logprobs, "finish_reason": reason}

    def opening(self, index: int) -> dict[str, Any] | None:
        return None

    def piece(self, index: int, text: str, steps: Sequence[StepLogprobs]) -> dict[str, Any] | None:
        if not text and not steps:
            return None
        offset = self._offsets.get(index, 0)
        self._offsets[index] = offset + len(text)
        logprobs = completion_logprobs(steps, offset) if self.logprobs is not None else None
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": None}

    def closing(self, index: int, result: Result) -> list[dict[str, Any]]:
        reason = result.finish_reason.value
        return [{"index": index, "text": "", "logprobs": None, "finish_reason": reason}]


@dataclass
class ChatStyle:
    """/v1/chat/completions: `message` choices (tool calls parsed when `tools`); a streamed
    reply that begins like a call is held back and sent as tool-call deltas at its end."""

    logprobs: int | None
    tools: bool
    call_id: str = "call"
    object_name: str = "chat.completion"
    id_prefix: str = "chatcmpl"
    _heads: dict[int, str] = field(default_factory=dict)  # text held: undecided, or a call
    _texts: set[int] = field(default_factory=set)  # choices known to be text replies

    def whole(self, index: int, result: Result) -> dict[str, Any]:
        calls = self._calls(index, result)
        message: dict[str, Any] = {"role": "assistant", "content": None if calls else result.text}
        if calls:
            message["tool_calls"] = calls_json(calls)
        logprobs = None if result.logprobs is None else chat_logprobs(result.logprobs)
        return {
            "index": index,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": "tool_calls" if calls else result.finish_reason.value,
        }

    def opening(self, index: int) -> dict[str, Any] | None:
        delta = {"role": "assistant", "content": ""}
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}

    def piece(self, index: int, text: str, steps: Sequence[StepLogprobs]) -> dict[str, Any] | None:
        if self.tools:
            text = self._sniff(index, text)
            if text is None:  # a call, or not known yet: held back
                return None
        if not text and not steps:
            return None
        logprobs = chat_logprobs(steps) if self.logprobs is not None else None
        delta = {"content": text} if text else {}
        return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}

    def closing(self, index: int, result: Result) -> list[dict[str, Any]]:
        calls = self._calls(index, result)
        chunks = []
        for i, call in enumerate(calls):
            head = {"index": i, "id": call.id, "type": "function"}
            named = {**head, "function": {"name": call.name, "arguments": ""}}
            arguments = {"index": i, "function": {"arguments": call.arguments}}
            for part in (named, arguments):
                delta = {"tool_calls": [part]}
                chunks.append(
                    {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
                )
        held = self._heads.pop(index, "")
        if held and not calls:  # a text reply too short to decide on before it ended
            delta = {"content": held}
            chunks.append({"index": index, "delta": delta, "logprobs": None, "finish_reason": None})
        reason = "tool_calls" if calls else result.finish_reason.value
        chunks.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": reason})
        return chunks

    def _calls(self, index: int, result: Result) -> list[ToolCall]:
        if not self.tools:
            return []
        return parse_calls(result.text, f"{self.call_id}-{index}") or []

    def _sniff(self, index: int, text: str) -> str | None:
        """Text to send now, or None while the reply may still be (or is) a call."""
        if index in self._texts:
            return text
        head = self._heads.get(index, "") + text
        stripped = head.lstrip()
        if not stripped or CALL_OPEN.startswith(stripped[: len(CALL_OPEN)]):
            self._heads[index] = head
            return None
        self._heads.pop(index, None)
        self._texts.add(index)
        return head
