"""Agents, results and traces as JSON (for the HTTP routes and the CLI)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from llmasos.agents.agent import AgentInfo, AgentResult, TraceEntry


def jsonable(value: Any) -> Any:
    """`value` as JSON types; what JSON cannot hold is shown by its repr."""
    return json.loads(json.dumps(value, default=repr))


def agent_info_to_json(info: AgentInfo) -> dict[str, Any]:
    data = dataclasses.asdict(info)
    data["object"] = "agent"
    data["state"] = info.state.value
    data["outcome"] = None if info.outcome is None else info.outcome.value
    return data


def trace_entry_to_json(entry: TraceEntry) -> dict[str, Any]:
    return jsonable(dataclasses.asdict(entry))


def agent_result_to_json(result: AgentResult, *, trace: bool = True) -> dict[str, Any]:
    usage = dataclasses.asdict(result.usage)
    usage["steps"], usage["computed_tokens"] = result.usage.steps, result.usage.computed_tokens
    data = {
        "pid": result.pid,
        "outcome": result.outcome.value,
        "value": jsonable(result.value),
        "error": result.error,
        "usage": usage,
        "wall_s": round(result.wall_s, 3),
    }
    if trace:
        data["trace"] = [trace_entry_to_json(entry) for entry in result.trace]
    return data
