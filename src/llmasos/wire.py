"""JSON forms of the kernel's public records, shared by the server and the HTTP client."""

from __future__ import annotations

import dataclasses
from typing import Any

from llmasos.kernel.process import (
    FinishReason,
    ProcessInfo,
    ProcessState,
    Result,
    TextPiece,
    Timings,
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


def result_to_json(result: Result) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data["finish_reason"] = result.finish_reason.value
    data["usage"]["total_tokens"] = result.usage.total_tokens
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
    )


def event_to_json(event: TextPiece | Result) -> dict[str, Any]:
    if isinstance(event, TextPiece):
        return {"type": "text", "text": event.text, "token_ids": event.token_ids}
    return {"type": "result", "result": result_to_json(event)}


def event_from_json(data: dict[str, Any]) -> TextPiece | Result:
    if data["type"] == "text":
        return TextPiece(data["text"], list(data["token_ids"]))
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
