"""client.fs and client.agent_memory() against an `llmasos serve` server: the same methods as
the in-process FileSystemView and AgentMemory, over /v1/fs and /v1/agent-memory."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from llmasos.remote import raise_for_error
from llmasos.storage.agent_memory import MemoryItem
from llmasos.storage.documents import IndexReport
from llmasos.storage.fs import FileInfo
from llmasos.storage.paths import Principal, locate
from llmasos.storage.records import Grant

_ANYONE = Principal("client")  # paths are checked as the server will, before they travel


def _path(path: str, field: str = "path") -> str:
    """`path` for a URL, refused here as the server would refuse it: an HTTP client would
    otherwise resolve '..' segments on the way and reach another file."""
    locate(_ANYONE, path, field)
    return quote(path.lstrip("/"), safe="/~:@")


def _prefix(prefix: str) -> str:
    locate(_ANYONE, prefix, "prefix", allow_root=True)
    return prefix


def _params(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


class RemoteFileSystem:
    """The file system of the server, as the client's API key's owner."""

    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, **kwargs)
        raise_for_error(response)
        return response.json()

    def write(self, path: str, data: bytes | str, expected_version: int | None = None) -> int:
        content = data.encode() if isinstance(data, str) else bytes(data)
        params = _params(expected_version=expected_version)
        reply = self._json("PUT", f"/v1/fs/files/{_path(path)}", content=content, params=params)
        return int(reply["version"])

    def read(self, path: str, version: int | None = None) -> bytes:
        response = self._http.get(f"/v1/fs/files/{_path(path)}", params=_params(version=version))
        raise_for_error(response)
        return response.content

    def stat(self, path: str) -> FileInfo:
        return FileInfo.from_json(self._json("GET", f"/v1/fs/stat/{_path(path)}"))

    def history(self, path: str) -> list[FileInfo]:
        rows = self._json("GET", f"/v1/fs/history/{_path(path)}")["data"]
        return [FileInfo.from_json(row) for row in rows]

    def list(self, prefix: str = "") -> list[FileInfo]:
        rows = self._json("GET", "/v1/fs/list", params={"prefix": _prefix(prefix)})["data"]
        return [FileInfo.from_json(row) for row in rows]

    def diff(self, path: str, from_version: int, to_version: int | None = None) -> str:
        params = _params(from_version=from_version, to_version=to_version)
        return self._json("GET", f"/v1/fs/diff/{_path(path)}", params=params)["diff"]

    def delete(self, path: str, expected_version: int | None = None) -> int:
        params = _params(expected_version=expected_version)
        return int(self._json("DELETE", f"/v1/fs/files/{_path(path)}", params=params)["version"])

    def purge(self, path: str, expected_version: int | None = None) -> int:
        params = {"purge": "true", **_params(expected_version=expected_version)}
        reply = self._json("DELETE", f"/v1/fs/files/{_path(path)}", params=params)
        return int(reply["freed_bytes"])

    def move(self, source: str, destination: str) -> int:
        _path(source, "source"), _path(destination, "destination")
        body = {"source": source, "destination": destination}
        return int(self._json("POST", "/v1/fs/move", json=body)["version"])

    def rollback(self, path: str, version: int) -> int:
        url = f"/v1/fs/rollback/{_path(path)}"
        return int(self._json("POST", url, json={"version": version})["version"])

    def grant(self, prefix: str, to: str, mode: str = "read") -> Grant:
        body = {"prefix": _prefix(prefix), "to": to, "mode": mode}
        return Grant.from_json(self._json("POST", "/v1/fs/grants", json=body))

    def revoke(self, prefix: str, to: str) -> bool:
        return bool(
            self._json("DELETE", "/v1/fs/grants", params={"prefix": _prefix(prefix), "to": to})[
                "revoked"
            ]
        )

    def grants(self, prefix: str = "") -> list[Grant]:
        rows = self._json("GET", "/v1/fs/grants", params={"prefix": _prefix(prefix)})["data"]
        return [Grant.from_json(row) for row in rows]

    def usage(self) -> int:
        return int(self._json("GET", "/v1/fs/usage")["bytes"])


class RemoteAgentMemory:
    """An agent's memory on the server (the owner's own with agent=None)."""

    def __init__(self, http: httpx.Client, agent: str | None) -> None:
        self._http = http
        self._params = _params(agent=agent)

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._http.request(method, url, params=self._params, **kwargs)
        raise_for_error(response)
        return response.json()

    def core(self, label: str | None = None, text: str | None = None) -> dict[str, str]:
        if label is None:
            return self._json("GET", "/v1/agent-memory/core")["core"]
        body = {"text": "" if text is None else text}
        return self._json("PUT", f"/v1/agent-memory/core/{quote(label, safe='')}", json=body)[
            "core"
        ]

    def store(self, text: str) -> MemoryItem:
        reply = self._json("POST", "/v1/agent-memory/archival", json={"text": text})
        return MemoryItem.from_json(reply)

    def forget(self, keys: list[int], *, tier: str = "archival") -> int:
        body = {"keys": list(keys), "tier": tier}
        return int(self._json("POST", "/v1/agent-memory/forget", json=body)["forgotten"])

    def index(self, path: str) -> IndexReport:
        reply = self._json("POST", "/v1/agent-memory/index", json={"path": path})
        return IndexReport(**reply)

    def log(self, role: str, text: str) -> MemoryItem:
        body = {"role": role, "text": text}
        return MemoryItem.from_json(self._json("POST", "/v1/agent-memory/recall", json=body))

    def recall(self, first_seq: int = 1, limit: int | None = None) -> list[MemoryItem]:
        response = self._http.get(
            "/v1/agent-memory/recall",
            params={**self._params, **_params(first_seq=first_seq, limit=limit)},
        )
        raise_for_error(response)
        return [MemoryItem.from_json(row) for row in response.json()["data"]]

    def search(self, query: str, k: int = 5, *, tier: str = "archival") -> list[MemoryItem]:
        body = {"query": query, "k": k, "tier": tier}
        rows = self._json("POST", "/v1/agent-memory/search", json=body)["data"]
        return [MemoryItem.from_json(row) for row in rows]
