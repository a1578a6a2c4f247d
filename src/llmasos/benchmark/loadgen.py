"""A load generator for OpenAI-compatible servers: streamed requests, each recorded with its time
to first token, its latency and its tokens; a closed loop sends each client's requests one after
another."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class RequestRecord:
    ttft_s: float  # request sent -> first non-empty text chunk
    total_s: float
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int  # prompt tokens the server reported as reused from its cache
    text: str
    finish_reason: str | None = None
    usage_reported: bool = True  # False: the server sent no usage; tokens are text chunks

    @property
    def time_per_output_token_s(self) -> float | None:
        """Seconds per output token after the first (None with fewer than two tokens)."""
        if self.completion_tokens < 2:
            return None
        return (self.total_s - self.ttft_s) / (self.completion_tokens - 1)


class StreamError(Exception):
    """A stream that the server ended with an error chunk."""


def new_client(url: str) -> httpx.AsyncClient:
    """A client that opens a connection per request: llama-server may close an idle keep-alive
    connection just as the next request goes out on it."""
    return httpx.AsyncClient(
        base_url=url, timeout=3600, limits=httpx.Limits(max_keepalive_connections=0)
    )


async def stream_completion(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    on_text: Callable[[], None] | None = None,
    headers: dict[str, str] | None = None,
) -> RequestRecord:
    """Send `body` streamed (with `headers`, e.g. a bearer key); `on_text` is called for each
    chunk that carries text."""
    started = time.perf_counter()
    first: float | None = None
    usage: dict[str, Any] | None = None
    pieces: list[str] = []
    finish_reason: str | None = None
    request = {**body, "stream": True, "stream_options": {"include_usage": True}}
    async with client.stream("POST", path, json=request, headers=headers) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("error"):
                raise StreamError(f"{path}: the stream ended with an error: {chunk['error']}")
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                finish_reason = choice.get("finish_reason") or finish_reason
                text = choice.get("text") or (choice.get("delta") or {}).get("content")
                if text:
                    pieces.append(text)
                    if on_text is not None:
                        on_text()
                    if first is None:
                        first = time.perf_counter()
    finished = time.perf_counter()
    reported = usage or {"completion_tokens": len(pieces), "prompt_tokens": 0}
    cached = (reported.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return RequestRecord(
        ttft_s=(first or finished) - started,
        total_s=finished - started,
        completion_tokens=reported["completion_tokens"],
        prompt_tokens=reported["prompt_tokens"],
        cached_tokens=cached,
        text="".join(pieces),
        finish_reason=finish_reason,
        usage_reported=usage is not None,
    )


async def closed_loop(
    url: str,
    path: str,
    bodies: list[list[dict[str, Any]]],
    headers: list[dict[str, str]] | None = None,
) -> tuple[list[RequestRecord], float]:
    """bodies[i] is client i's sequence of requests, sent with headers[i] if given. Returns
    every record and the wall time."""
    async with new_client(url) as client:

        async def run_client(
            sequence: list[dict[str, Any]], sent_with: dict[str, str] | None
        ) -> list[RequestRecord]:
            return [
                await stream_completion(client, path, body, headers=sent_with) for body in sequence
            ]

        started = time.perf_counter()
        per_client = await asyncio.gather(
            *(run_client(s, headers[i] if headers else None) for i, s in enumerate(bodies))
        )
        wall = time.perf_counter() - started
    return [record for records in per_client for record in records], wall


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]
