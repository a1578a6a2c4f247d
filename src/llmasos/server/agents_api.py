"""Agent routes: declarative agents run by the built-in tool-using loop on the server.

POST   /v1/agents                 start one (201, its info)
GET    /v1/agents                 the live ones (?all=true: ended ones too)
GET    /v1/agents/{pid}           its info, and its result once it ended
DELETE /v1/agents/{pid}           kill it (its model calls and child agents too)
GET    /v1/agents/{pid}/trace     every syscall so far
GET    /v1/agents/{pid}/events    server-sent events: each syscall as it ends, then the result
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from llmasos.agents.agent import Agent, AgentInfo, AgentResult
from llmasos.agents.react import check_spec_tools, run_spec
from llmasos.agents.runtime import AgentRuntime
from llmasos.agents.serialize import agent_info_to_json, agent_result_to_json, trace_entry_to_json
from llmasos.agents.storage_calls import agent_principal
from llmasos.runtime.model_calls import ManagerModelCalls
from llmasos.server.agent_schemas import AgentRequest
from llmasos.server.api_docs import AGENT_ROUTES, Pid, links, streamed
from llmasos.server.guards import audit, caller_of
from llmasos.server.openai_api import models_of
from llmasos.server.ownership import owned_agent, visible
from llmasos.storage.paths import Principal

router = APIRouter()

EVENT_POLL_S = 0.1


def agents_of(request: Request) -> AgentRuntime:
    return request.app.state.agents


@router.post(
    "/v1/agents",
    status_code=201,
    responses={201: {"description": "The agent", "links": links("/pid", "pid", AGENT_ROUTES)}},
)
async def start_agent(body: AgentRequest, request: Request) -> dict[str, Any]:
    runtime = agents_of(request)
    spec = body.spec()
    check_spec_tools(spec, runtime.tools)  # refused now, not at the agent's first step
    owner = request.state.owner
    caps = request.state.capabilities.resolved(Principal(owner))
    if body.capabilities is not None:
        wanted = body.capabilities.capabilities()
        caps = caps.narrowed(wanted.resolved(agent_principal(owner, spec.name)))
    for tool in spec.tools:
        caps.check_tool(tool)
    limiter, caller = request.app.state.rate_limiter, caller_of(request)
    calls = ManagerModelCalls(models_of(request), owner, lambda n: limiter.take_tokens(caller, n))
    agent = runtime.start(
        run_spec,
        (spec, body.task),
        name=spec.name,
        priority=spec.priority,
        limits=spec.limits,
        owner=owner,
        calls=calls,
        capabilities=caps,
    )
    return agent_info_to_json(AgentInfo.of(agent))


@router.get("/v1/agents")
async def list_agents(request: Request, all: bool = False) -> dict[str, Any]:
    rows = agents_of(request).agents(include_ended=all)
    rows = [info for info in rows if visible(request, info.owner)]
    return {"object": "list", "data": [agent_info_to_json(info) for info in rows]}


@router.get("/v1/agents/{pid}")
async def get_agent(pid: Pid, request: Request) -> dict[str, Any]:
    return agent_body(owned_agent(request, pid))


@router.delete("/v1/agents/{pid}")
async def delete_agent(pid: Pid, request: Request) -> dict[str, Any]:
    """Kill the agent if it still runs (its model calls and child agents too) and forget it:
    its info and result as it ended, the last time they are served."""
    owned_agent(request, pid)
    body = agent_body(await run_in_threadpool(agents_of(request).remove, pid))
    await run_in_threadpool(audit, request, "agent.kill", f"pid {pid}")
    return body


def agent_body(agent: Agent) -> dict[str, Any]:
    """An agent's info, with its result (trace included) once it ended."""
    body = agent_info_to_json(AgentInfo.of(agent))
    body["result"] = None if agent.alive else agent_result_to_json(AgentResult.of(agent))
    return body


@router.get("/v1/agents/{pid}/trace")
async def get_trace(pid: Pid, request: Request) -> dict[str, Any]:
    trace = list(owned_agent(request, pid).trace)
    return {"object": "list", "data": [trace_entry_to_json(entry) for entry in trace]}


@router.get(
    "/v1/agents/{pid}/events",
    response_class=StreamingResponse,
    responses=streamed("Each syscall as it ends, then the result.", json_too=False),
)
async def agent_events(pid: Pid, request: Request) -> StreamingResponse:
    agent = owned_agent(request, pid)

    async def sse() -> AsyncIterator[str]:
        sent = 0
        while True:
            ended = agent.done.is_set()
            entries = agent.trace[sent:]
            for entry in entries:
                yield f"data: {json.dumps({'step': trace_entry_to_json(entry)})}\n\n"
            sent += len(entries)
            if ended:
                result = agent_result_to_json(AgentResult.of(agent), trace=False)
                yield f"data: {json.dumps({'result': result})}\n\n"
                yield "data: [DONE]\n\n"
                return
            await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(sse(), media_type="text/event-stream")
