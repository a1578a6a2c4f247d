"""A streamed answer that survives its replica: when the replica goes mid-stream, the request
runs again on another one and the client's stream goes on where it was cut, with no text twice.

The front gives every generation request a seed when it has none, so a second run draws the
same tokens as the first (greedy or seeded sampling is exact in the kernel, batched or alone).
The relay remembers the text each choice has already delivered, drops it from the second run's
chunks (a chunk that straddles the cut is trimmed) and passes the rest on under the first run's
id. If the second run's text does not start with what was delivered, the stream ends with an
error event rather than a text that does not follow.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from llmasos.cluster.proxy import ReplicaUnreachable, error_event

Opener = Callable[[], Awaitable[httpx.Response]]  # a stream of the request on some replica


def choice_text(choice: dict[str, Any]) -> str:
    """The text a streamed choice adds: a completion's `text`, a chat delta's `content`."""
    if "text" in choice:
        return choice.get("text") or ""
    return (choice.get("delta") or {}).get("content") or ""


def _with_text(choice: dict[str, Any], text: str) -> dict[str, Any]:
    if "text" in choice:
        return {**choice, "text": text}
    return {**choice, "delta": {**(choice.get("delta") or {}), "content": text}}


class Diverged(Exception):
    """The second run's text does not continue what the client already has."""


class Relay:
    """The SSE lines of one answer, across the replicas that produce it."""

    def __init__(self) -> None:
        self.sent: dict[int, str] = {}  # choice index -> text the client has
        self.finished: set[int] = set()  # choices whose finish_reason the client has
        self.replayed: dict[int, str] | None = (
            None  # text of the current re-run, while it catches up
        )
        self.answer_id: str | None = None

    def restart(self) -> None:
        """A new run starts: its text is checked against what was sent and the overlap dropped."""
        self.replayed = {}

    def line(self, line: str) -> str | None:
        """The line to pass on for `line` of the current run (None: drop it)."""
        if not line.startswith("data: {"):
            return line
        chunk = json.loads(line[6:])
        if "choices" not in chunk:
            return line  # an error event
        self.answer_id = self.answer_id or chunk.get("id")
        chunk["id"] = self.answer_id
        kept = [c for c in (self._choice(c) for c in chunk["choices"]) if c is not None]
        if chunk["choices"] and not kept:
            return None
        chunk["choices"] = kept
        return "data: " + json.dumps(chunk, ensure_ascii=False)

    def _choice(self, choice: dict[str, Any]) -> dict[str, Any] | None:
        index, piece = choice.get("index", 0), choice_text(choice)
        have = self.sent.get(index, "")
        if self.replayed is None:  # the first run, or a re-run that has caught up
            self.sent[index] = have + piece
            if choice.get("finish_reason") is not None:
                self.finished.add(index)
            return choice
        done = self.replayed.get(index, "")
        now = done + piece
        self.replayed[index] = now
        common = min(len(now), len(have))
        if now[:common] != have[:common]:
            raise Diverged(f"choice {index}: the re-run's text differs after {len(done)} chars")
        if index in self.finished or (len(now) <= len(have) and not choice.get("finish_reason")):
            return None  # all of it was delivered already
        fresh = now[len(have) :] if len(now) > len(have) else ""
        self.sent[index] = have + fresh
        if choice.get("finish_reason") is not None:
            self.finished.add(index)
        if all(len(self.replayed.get(i, "")) >= len(t) for i, t in self.sent.items()):
            self.replayed = None  # caught up on every choice: pass chunks as they come
        return _with_text(choice, fresh)


async def relayed(
    first: httpx.Response, reopen: Opener, done: Callable[[], None]
) -> AsyncIterator[bytes]:
    """The bytes of an SSE answer from `first`, re-run through `reopen` (another replica) each
    time a replica goes mid-stream; `done` runs once at the end."""
    relay, response = Relay(), first
    try:
        while True:
            try:
                async for line in response.aiter_lines():
                    out = relay.line(line)
                    if out is not None:
                        yield (out + "\n").encode()
                return
            except httpx.TransportError:
                await response.aclose()
                try:
                    response = await reopen()
                except ReplicaUnreachable as error:
                    yield error_event(
                        f"the replica went away mid-stream and no other could go on: {error}"
                    )
                    return
                relay.restart()
            except Diverged as error:
                yield error_event(f"the replica went away mid-stream; {error}")
                return
    finally:
        await response.aclose()
        done()
