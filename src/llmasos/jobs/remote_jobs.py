"""Training jobs on an `llmasos serve` server, with the job manager's methods (the server knows
the caller from its key, so `owner` arguments are not sent)."""

from __future__ import annotations

from typing import Any

import httpx

from llmasos.errors import InvalidRequestError
from llmasos.jobs.tasks import TaskStatus, TrainingTask, wait_for_end
from llmasos.remote import raise_for_error

POLL_S = 0.5


class RemoteJobs:
    def __init__(self, http: httpx.Client) -> None:
        self._http = http

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        raise_for_error(response)
        return response.json()

    def submit(self, task: TrainingTask, data: bytes, owner: str | None = None) -> TaskStatus:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError("data", "the file is not UTF-8 text") from None
        body = {"task": task.to_json(), "data": text}
        return TaskStatus.from_json(self._call("POST", "/v1/tasks", json=body))

    def status(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return TaskStatus.from_json(self._call("GET", f"/v1/tasks/{task_id}"))

    def list(self, owner: str | None = None) -> list[TaskStatus]:
        return [TaskStatus.from_json(s) for s in self._call("GET", "/v1/tasks")["data"]]

    def logs(self, task_id: str, owner: str | None = None, after_step: int = 0) -> list[dict]:
        params = {"after_step": after_step}
        return self._call("GET", f"/v1/tasks/{task_id}/logs", params=params)["data"]

    def cancel(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return TaskStatus.from_json(self._call("POST", f"/v1/tasks/{task_id}/cancel"))

    def suspend(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return TaskStatus.from_json(self._call("POST", f"/v1/tasks/{task_id}/suspend"))

    def resume(self, task_id: str, owner: str | None = None) -> TaskStatus:
        return TaskStatus.from_json(self._call("POST", f"/v1/tasks/{task_id}/resume"))

    def delete(self, task_id: str, owner: str | None = None) -> None:
        self._call("DELETE", f"/v1/tasks/{task_id}")

    def wait(self, task_id: str, timeout: float | None = None) -> TaskStatus:
        """Block until the job ends (or `timeout` s pass); its status."""
        return wait_for_end(self.status, task_id, timeout, POLL_S)
