"""One benchmark's connection to one server: which URL, model and key, and every request it sent.

A failed request does not stop the run: it is counted, with its message, in the figures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from llmasos.benchmark.loadgen import RequestRecord, StreamError, new_client, stream_completion

COMPLETIONS = "/v1/completions"


@dataclass(frozen=True)
class Target:
    """A server to measure: its label in the figures, its URL, model and key."""

    label: str
    url: str
    model: str | None = None  # None: the server's default model (the field is left out)
    api_key: str | None = field(default=None, repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass
class Session:
    """Requests to one target, with the errors met and a callback per finished request."""

    target: Target
    client: httpx.AsyncClient
    on_done: Callable[[], None] = lambda: None
    errors: list[str] = field(default_factory=list)

    def body(self, prompt: str, max_tokens: int, **extra: Any) -> dict[str, Any]:
        """A greedy completion request for `prompt`."""
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, **extra}
        if self.target.model:
            body["model"] = self.target.model
        return body

    async def send(
        self,
        body: dict[str, Any],
        on_text: Callable[[], None] | None = None,
        counted: bool = True,
    ) -> RequestRecord | None:
        """Stream `body`; None (and the error kept) when the request fails. `counted` ones
        advance the progress (open-ended background load does not)."""
        try:
            record = await stream_completion(
                self.client, COMPLETIONS, body, on_text, self.target.headers()
            )
        except httpx.HTTPStatusError as error:
            self.errors.append(f"HTTP {error.response.status_code} from {COMPLETIONS}")
            return None
        except (httpx.HTTPError, StreamError, ValueError, KeyError) as error:
            self.errors.append(f"{type(error).__name__}: {error}"[:300])
            return None
        finally:
            if counted:
                self.on_done()
        return record

    async def counter(self, name: str, label: str = "") -> float | None:
        """The sum of a Prometheus counter's series at /metrics whose labels hold `label`;
        None where the server has no such metric (or no /metrics)."""
        try:
            response = await self.client.get("/metrics", headers=self.target.headers())
        except httpx.HTTPError:
            return None
        return counter_sum(response.text, name, label) if response.status_code == 200 else None


def counter_sum(exposition: str, name: str, label: str = "") -> float | None:
    """The sum of the samples of `name` whose labels hold `label`, in Prometheus's text format;
    None when there is none."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.eE+-]+)$", re.M)
    values = [float(v) for labels, v in pattern.findall(exposition) if label in labels]
    return sum(values) if values else None


async def resolve_model(url: str, api_key: str | None) -> str | None:
    """The model to ask for: the only one a server lists, else None (its default). Raises
    httpx.HTTPError when the server cannot be reached or refuses the key."""
    target = Target("probe", url, api_key=api_key)
    async with new_client(url) as client:
        response = await client.get("/v1/models", headers=target.headers())
    if response.status_code == 404:
        return None
    response.raise_for_status()
    models = [m.get("id") for m in response.json().get("data") or []]
    return models[0] if len(models) == 1 else None
