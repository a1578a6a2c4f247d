"""JSON forms of the kernel's public records, shared by the server and the HTTP client."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmasos import errors
from llmasos.kernel.process import (
    FinishReason,
    ProcessInfo,
    ProcessState,
    Result,
    StepLogprobs,
    TextPiece,
    Timings,
    TokenProb,
    Usage,
)
from llmasos.kernel.stats import MemoryReport, ProcessMemory


def info_to_json(info: ProcessInfo) -> dict[str, Any]:
    data = dataclasses.asdict(info)
    data["state"] = info.state.value
    data["finish_reason"] = info.finish_reason.value if info.finish_reason else None
    return data


def info_from_json(data: dict[str, Any]) -> ProcessInfo:
    reason = data.get("finish_reason")
    return ProcessInfo(
        **{
            **{f.name: data[f.name] for f in dataclasses.fields(ProcessInfo)},
            "state": ProcessState(data["state"]),
            "finish_reason": FinishReason(reason) if reason else None,
        }
    )


def logprobs_to_json(steps: Sequence[StepLogprobs]) -> list[dict[str, Any]]:
    def prob(p: TokenProb) -> dict[str, Any]:
        return {"token": p.token, "bytes": list(p.piece), "logprob": p.logprob}

    return [
        {**prob(step.chosen), "alternatives": [prob(a) for a in step.alternatives]}
        for step in steps
    ]


def logprobs_from_json(data: Sequence[dict[str, Any]]) -> list[StepLogprobs]:
    def prob(row: dict[str, Any]) -> TokenProb:
        return TokenProb(row["token"], bytes(row["bytes"]), row["logprob"])

    return [StepLogprobs(prob(row), tuple(prob(a) for a in row["alternatives"])) for row in data]


def result_to_json(result: Result) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["finish_reason"] = result.finish_reason.value
    data["usage"]["total_tokens"] = result.usage.total_tokens
    if result.logprobs is not None:
        data["logprobs"] = logprobs_to_json(result.logprobs)
    return data


def result_from_json(data: dict[str, Any]) -> Result:
    usage = data["usage"]
    return Result(
        pid=data["pid"],
        text=data["text"],
        token_ids=list(data["token_ids"]),
        finish_reason=FinishReason(data["finish_reason"]),
        usage=Usage(
            usage["prompt_tokens"], usage["completion_tokens"], usage.get("cached_tokens", 0)
        ),
        timings=Timings(**data["timings"]),
        preemptions=data["preemptions"],
        error=data.get("error"),
        logprobs=None if data.get("logprobs") is None else logprobs_from_json(data["logprobs"]),
    )


def event_to_json(event: TextPiece | Result) -> dict[str, Any]:
    if isinstance(event, TextPiece):
        data = {"type": "text", "text": event.text, "token_ids": event.token_ids}
        if event.logprobs:
            data["logprobs"] = logprobs_to_json(event.logprobs)
        return data
    return {"type": "result", "result": result_to_json(event)}


def event_from_json(data: dict[str, Any]) -> TextPiece | Result:
    if data["type"] == "text":
        steps = tuple(logprobs_from_json(data.get("logprobs", ())))
        return TextPiece(data["text"], list(data["token_ids"]), steps)
    return result_from_json(data["result"])


def memory_to_json(report: MemoryReport) -> dict[str, Any]:
    data = dataclasses.asdict(report)
    data["prefix_hit_rate"] = round(report.prefix_hit_rate, 4)
    return data


def memory_from_json(data: dict[str, Any]) -> MemoryReport:
    fields = {f.name for f in dataclasses.fields(MemoryReport)}
    values = {k: v for k, v in data.items() if k in fields}
    values["processes"] = [ProcessMemory(**row) for row in data["processes"]]
    return MemoryReport(**values)


@dataclass(frozen=True)
class ErrorStatus:
    """How one error class travels over HTTP. A param of None means the error's own field."""

    status: int
    kind: str
    code: str | None = None
    param: str | None = None


# Most specific first (a ContextLengthError is an InvalidRequestError, for one).
ERROR_STATUSES: list[tuple[type[errors.LLMasOSError], ErrorStatus]] = [
    (
        errors.ContextLengthError,
        ErrorStatus(413, "invalid_request_error", "context_length_exceeded", "max_tokens"),
    ),
    (errors.UnprocessableError, ErrorStatus(422, "invalid_request_error", "unprocessable")),
    (errors.InvalidRequestError, ErrorStatus(400, "invalid_request_error")),
    (errors.AuthenticationError, ErrorStatus(401, "authentication_error", "invalid_api_key")),
    (errors.CapabilityError, ErrorStatus(403, "permission_error", "capability_denied")),
    (
        errors.PermissionDeniedError,
        ErrorStatus(403, "permission_error", "permission_denied"),
    ),
    (
        errors.UnknownModelError,
        ErrorStatus(404, "invalid_request_error", "model_not_found", "model"),
    ),
    (
        errors.NoSuchProcessError,
        ErrorStatus(404, "invalid_request_error", "process_not_found", "pid"),
    ),
    (
        errors.ProcessTerminatedError,
        ErrorStatus(409, "invalid_request_error", "process_terminated", "pid"),
    ),
    (
        errors.QuotaExceededError,
        ErrorStatus(429, "rate_limit_error", "quota_exceeded", "max_tokens"),
    ),
    (errors.JobLimitError, ErrorStatus(429, "rate_limit_error", "too_many_jobs", "task")),
    (errors.KernelBusyError, ErrorStatus(429, "rate_limit_error", "too_many_processes")),
    (errors.RateLimitedError, ErrorStatus(429, "rate_limit_error", "rate_limited")),
    (errors.ModelExistsError, ErrorStatus(409, "invalid_request_error", "model_exists", "name")),
    (errors.ModelBusyError, ErrorStatus(409, "invalid_request_error", "model_busy", "model")),
    (errors.ModelPinnedError, ErrorStatus(409, "invalid_request_error", "model_pinned", "model")),
    (errors.ModelInUseError, ErrorStatus(409, "invalid_request_error", "model_in_use", "model")),
    (
        errors.ModelFileError,
        ErrorStatus(422, "invalid_request_error", "invalid_model_file", "source"),
    ),
    (
        errors.FileNotFoundInStoreError,
        ErrorStatus(404, "invalid_request_error", "file_not_found", "path"),
    ),
    (errors.UnknownKeyError, ErrorStatus(404, "invalid_request_error", "key_not_found", "key_id")),
    (errors.UnknownObjectError, ErrorStatus(404, "invalid_request_error", "not_found")),
    (errors.ObjectInUseError, ErrorStatus(409, "invalid_request_error", "in_use")),
    (
        errors.PathExistsError,
        ErrorStatus(409, "invalid_request_error", "path_exists", "destination"),
    ),
    (
        errors.ConflictError,
        ErrorStatus(409, "invalid_request_error", "conflict", "expected_version"),
    ),
    (
        errors.StorageQuotaError,
        ErrorStatus(413, "invalid_request_error", "storage_quota_exceeded", "data"),
    ),
    (errors.IntegrityError, ErrorStatus(500, "server_error", "integrity_error")),
    (errors.UnknownToolError, ErrorStatus(422, "invalid_request_error", "unknown_tool", "tools")),
    (errors.MailboxFullError, ErrorStatus(429, "rate_limit_error", "mailbox_full", "to")),
    (errors.SandboxUnavailableError, ErrorStatus(503, "server_error", "no_sandbox")),
    (errors.ClusterUnavailableError, ErrorStatus(503, "server_error", "cluster_unavailable")),
    (errors.NotInstalledError, ErrorStatus(501, "server_error", "not_installed")),
    (errors.MemoryBudgetError, ErrorStatus(503, "server_error", "memory_budget", "model")),
    (errors.KernelClosedError, ErrorStatus(503, "server_error", "unavailable")),
    (errors.SwapError, ErrorStatus(503, "server_error", "swap_error")),
    (errors.EngineError, ErrorStatus(503, "server_error", "engine_error")),
]


def error_status(error: errors.LLMasOSError) -> ErrorStatus:
    for cls, status in ERROR_STATUSES:
        if isinstance(error, cls):
            return status
    return ErrorStatus(400, "invalid_request_error")


def error_class(code: str | None, status: int) -> type[errors.LLMasOSError]:
    """The SDK exception class for an error a server sent."""
    for cls, known in ERROR_STATUSES:
        if code is not None and known.code == code:
            return cls
    for cls, known in ERROR_STATUSES:
        if known.status == status and known.code is None:
            return cls
    return errors.LLMasOSError
