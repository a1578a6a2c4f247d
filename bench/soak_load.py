"""The soak's clients: each loops over a seeded mix of request kinds until its time is up."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from typing import Any

import httpx

from llmasos.benchmark.prompts import random_prompts

KINDS = ("chat", "stream", "cancel", "urgent", "agent", "embed", "write")
WEIGHTS = {
    "chat": 20,
    "stream": 25,
    "cancel": 15,
    "urgent": 10,
    "agent": 5,
    "embed": 15,
    "write": 10,
}
AGENT = {
    "instructions": "You do arithmetic with the calculator.",
    "tools": ["calculator"],
    "max_steps": 2,
    "max_tokens_per_step": 48,
}


class Failed(Exception):
    """A request the server answered with an error."""


class Load:
    """The soak's requests, and what came of them."""

    def __init__(
        self,
        url: str,
        clients: int,
        seconds: float,
        kinds: tuple[str, ...] = KINDS,
        tag: str = "soak",
    ) -> None:
        self.url, self.clients, self.seconds, self.kinds = url, clients, seconds, kinds
        self.tag = tag  # request ids are TAG-N
        self.prompts = itertools.cycle(random_prompts(4000, seed=31, words=30))
        self.ids = itertools.count()
        self.sent: list[str] = []
        self.records: list[tuple[str, float]] = []  # (kind, seconds)
        self.errors: list[str] = []
        self.agent_outcomes: list[str] = []
        self.acked_files: dict[str, bytes] = {}
        self.unkilled = 0
        self.finished = 0
        self.stopped = False  # set: every client stops after its current request
        self.done = asyncio.Event()
        self.http: httpx.AsyncClient | None = None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        request_id = f"{self.tag}-{next(self.ids)}"
        self.sent.append(request_id)
        headers = {"X-Request-ID": request_id}
        response = await self.http.request(method, path, headers=headers, **kwargs)
        if response.status_code >= 400:
            raise Failed(f"{method} {path}: HTTP {response.status_code} {response.text[:160]}")
        return response

    async def once(self, client: int, kind: str) -> None:
        """One request (or one agent's requests) of `kind`; its latency or its error."""
        if self.http is None:
            self.http = _client(self.url)
        started = time.monotonic()
        try:
            await getattr(self, f"_{kind}")(client)
        except (httpx.HTTPError, Failed, KeyError, ValueError) as error:
            self.errors.append(f"{kind}: {type(error).__name__}: {error}"[:300])
        else:
            self.records.append((kind, time.monotonic() - started))
        self.finished += 1

    async def _chat(self, client: int) -> None:
        messages = [{"role": "user", "content": next(self.prompts)}]
        body = {"messages": messages, "max_tokens": 16, "temperature": 0}
        (await self._request("POST", "/v1/chat/completions", json=body)).json()["choices"]

    async def _stream(self, client: int, priority: int = 0, stop_early: bool = False) -> None:
        body = {"prompt": next(self.prompts), "max_tokens": 200 if stop_early else 24,
                "temperature": 0, "stream": True, "priority": priority}  # fmt: skip
        request_id = f"{self.tag}-{next(self.ids)}"
        self.sent.append(request_id)
        headers = {"X-Request-ID": request_id}
        async with self.http.stream("POST", "/v1/completions", json=body, headers=headers) as r:
            if r.status_code >= 400:
                raise Failed(f"stream: HTTP {r.status_code}")
            async for line in r.aiter_lines():
                if line == "data: [DONE]":
                    return
                if stop_early and line.startswith("data: "):
                    pid = int(json.loads(line[6:])["id"].split("-")[1])
                    break
            else:
                raise Failed("stream: ended without [DONE]")
        await self._check_killed(pid)

    async def _check_killed(self, pid: int) -> None:
        for _ in range(120):
            process = (await self._request("GET", f"/v1/processes/{pid}")).json()
            if process["state"] == "terminated":
                self.unkilled += process["finish_reason"] != "killed"
                return
            await asyncio.sleep(0.25)
        self.unkilled += 1

    async def _cancel(self, client: int) -> None:
        await self._stream(client, stop_early=True)

    async def _urgent(self, client: int) -> None:
        await self._stream(client, priority=5)

    async def _agent(self, client: int) -> None:
        body = {**AGENT, "task": f"What is {client} * {random.randrange(100)}?"}
        pid = (await self._request("POST", "/v1/agents", json=body)).json()["pid"]
        for _ in range(720):
            agent = (await self._request("GET", f"/v1/agents/{pid}")).json()
            if agent["result"] is not None:
                self.agent_outcomes.append(agent["result"]["outcome"])
                await self._request("DELETE", f"/v1/agents/{pid}")
                return
            await asyncio.sleep(0.25)
        raise Failed(f"agent {pid} still ran after 180 s")

    async def _embed(self, client: int) -> None:
        body = {"input": [next(self.prompts) for _ in range(3)]}
        data = (await self._request("POST", "/v1/embeddings", json=body)).json()["data"]
        if len(data) != 3:
            raise Failed(f"embeddings: {len(data)} vectors for 3 inputs")

    async def _write(self, client: int) -> None:
        path, content = f"soak/c{client}/f{next(self.ids)}.bin", os.urandom(256)
        await self._request("PUT", f"/v1/fs/files/{path}", content=content)
        self.acked_files[path] = content

    async def read_file(self, path: str) -> bytes | None:
        if self.http is None:
            self.http = _client(self.url)
        response = await self.http.get(f"/v1/fs/files/{path}")
        return response.content if response.status_code == 200 else None

    async def run_client(self, client: int) -> None:
        rng = random.Random(client)
        weights = [WEIGHTS[k] for k in self.kinds]
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline and not self.stopped:
            await self.once(client, rng.choices(self.kinds, weights)[0])

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None


def _client(url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=url, timeout=600, limits=limits)


async def drive(load: Load) -> None:
    """Every client until its time is up."""
    try:
        await asyncio.gather(*(load.run_client(c) for c in range(load.clients)))
    finally:
        load.done.set()
        await load.close()
