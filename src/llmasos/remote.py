"""The HTTP backend: the same SDK against an `llmasos serve` server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from llmasos import errors
from llmasos.handles import Backend, ProcessHandle
from llmasos.kernel.process import Event, ProcessInfo, ProcessState, Result, Signal
from llmasos.kernel.stats import KernelStatus, MemoryReport
from llmasos.wire import error_class, event_from_json, info_from_json, memory_from_json


def raise_for_error(response: httpx.Response) -> None:
    """Raise the SDK exception an error response stands for (same class as in-process)."""
    if response.is_success:
        return
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        error = {"message": response.text or response.reason_phrase}
    cls = error_class(error.get("code"), response.status_code)
    raise errors.rebuild(cls, error.get("message", ""), field=error.get("param"))


class RemoteProcessHandle(ProcessHandle):
    def __init__(self, http: httpx.Client, pid: int) -> None:
        super().__init__(pid)
        self._http = http

    @property
    def state(self) -> ProcessState:
        response = self._http.get(f"/v1/processes/{self.pid}")
        raise_for_error(response)
        return ProcessState(response.json()["state"])

    def wait(self, timeout: float | None = None) -> Result:
        try:
            for event in self._events(timeout):
                if isinstance(event, Result):
                    return event
        except httpx.TimeoutException as error:
            raise TimeoutError(f"pid {self.pid} still running after {timeout} s") from error
        raise errors.LLMasOSError(f"pid {self.pid}: the server closed the stream without a result")

    def _events(self, timeout: float | None = None) -> Iterator[Event]:
        url = f"/v1/processes/{self.pid}/events"
        limits = (10.0, timeout, 10.0, 10.0)  # connect, read, write, pool: httpx and httpx2 alike
        with self._http.stream("GET", url, timeout=limits) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                yield event_from_json(json.loads(line[6:]))

    def _signal(self, signal: Signal) -> None:
        raise_for_error(
            self._http.post(f"/v1/processes/{self.pid}/signal", json={"signal": signal.value})
        )

    def _backend_fork(self, n: int, seeds: list[int] | None) -> list[ProcessHandle]:
        body = {"n": n} if seeds is None else {"seeds": seeds}
        response = self._http.post(f"/v1/processes/{self.pid}/fork", json=body)
        raise_for_error(response)
        return [RemoteProcessHandle(self._http, row["pid"]) for row in response.json()["data"]]


def _local_only(max_pages: int | None) -> None:
    if max_pages is not None:
        raise errors.InvalidRequestError(
            "capabilities.max_pages", "is enforced by an in-process kernel only, not over HTTP"
        )


class HttpBackend(Backend):
    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    @property
    def http(self) -> httpx.Client:
        """The connection to the server (shared by client.fs and client.agent_memory)."""
        return self._http

    @property
    def model(self) -> str:
        response = self._http.get("/v1/models")
        raise_for_error(response)
        return response.json()["data"][0]["id"]

    def spawn(
        self,
        prompt: str,
        sampling: dict[str, Any],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle:
        _local_only(max_pages)
        return self._spawn({"prompt": prompt, **_fields(sampling, priority, model)})

    def spawn_chat(
        self,
        messages: object,
        sampling: dict[str, Any],
        *,
        priority: int,
        model: str | None,
        max_pages: int | None = None,
    ) -> ProcessHandle:
        _local_only(max_pages)
        return self._spawn({"messages": messages, **_fields(sampling, priority, model)})

    def _spawn(self, body: dict[str, Any]) -> ProcessHandle:
        response = self._http.post("/v1/processes", json=body)
        raise_for_error(response)
        return RemoteProcessHandle(self._http, response.json()["pid"])

    def attach(self, pid: int) -> ProcessHandle:
        raise_for_error(self._http.get(f"/v1/processes/{pid}"))
        return RemoteProcessHandle(self._http, pid)

    def ps(self) -> list[ProcessInfo]:
        response = self._http.get("/v1/processes")
        raise_for_error(response)
        return [info_from_json(row) for row in response.json()["data"]]

    def status(self) -> KernelStatus:
        response = self._http.get("/v1/stats")
        raise_for_error(response)
        return KernelStatus(**response.json())

    def memory(self) -> MemoryReport:
        response = self._http.get("/v1/memory")
        raise_for_error(response)
        return memory_from_json(response.json())

    def close(self) -> None:
        self._http.close()


def _fields(sampling: dict[str, Any], priority: int, model: str | None) -> dict[str, Any]:
    """The spawn body's fields: the constraint keyword (json_schema, grammar or regex) goes
    into the `constraint` object, and unset fields are left out."""
    fields = {
        k: v for k, v in {**sampling, "priority": priority, "model": model}.items() if v is not None
    }
    for name in ("json_schema", "grammar", "regex"):
        if name in fields:
            if "constraint" in fields:
                raise errors.InvalidRequestError(
                    name, "give at most one of json_schema, grammar and regex"
                )
            fields["constraint"] = {name: fields.pop(name)}
    return fields
