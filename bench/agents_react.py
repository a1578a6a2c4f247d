"""16 tool-using agents (ReAct style, 3 tools, 4 steps each, ~1000 tokens of shared
instructions) on LLMasOS's agent runtime, against the AIOS way of running the same agents: one
task per agent that sends each step's whole conversation to llama.cpp's `llama-server` (same
model, threads, -np 16, unified KV, prompt cache on), in the same run.

Every agent runs the same loop on both sides: at steps 1-3 the model must call one of the tools
(calc, weather, distance), at step 4 it must answer; each step's output is constrained to
that JSON (ours: llguidance through the agent's llm syscall; llama-server: its json_schema
field, which its GBNF sampler applies), greedy, at most 48 tokens; the tool's result is appended
as an Observation and the next step sends the grown transcript. Ours runs in-process
(llmasos.Client.run_agent); llama-server's agents are asyncio tasks sending HTTP requests.

A third side isolates the runtime from the constraint engine: llama-server replays exactly the
prompts our agents sent, each step generating as many tokens as ours did (ignore_eos, no
grammar), with the same concurrency. The target is our makespan <= 0.5x the AIOS way's.

    .venv/bin/python bench/agents_react.py
Writes bench/results/agents_react.json and .png.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass

import httpx

from llmasos import Client
from llmasos.agents.react import step_schema
from llmasos.benchmark.loadgen import new_client, percentile
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.constraint import with_json_layout
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from llmasos.tools.builtins import calculator_tool
from llmasos.tools.registry import Tool, ToolRegistry
from report import arguments
from servers import Q8_0_KV, llama_server

AGENTS, STEPS, MAX_TOKENS = 16, 4, 48
CONTEXT, THREADS = 2048, 2
TARGET = 0.5
CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Tokyo", "Quito", "Perth", "Dakar"]
ANSWER = {"type": "string", "maxLength": 24}  # fits MAX_TOKENS even at a character a token


@dataclass(frozen=True)
class Step:
    prompt: str
    text: str
    completion_tokens: int
    latency_s: float
    valid: bool


def tools() -> ToolRegistry:
    def weather(city: str) -> str:
        return f"{city}: {12 + len(city)} C, light wind"

    def distance(origin: str, destination: str) -> str:
        return f"{origin} to {destination}: {137 * (len(origin) + len(destination))} km"

    city = {"type": "string", "maxLength": 16}
    calc = calculator_tool()
    arithmetic = {**calc.parameters, "properties": {"expression": {**city, "minLength": 1}}}
    registry = ToolRegistry([Tool("calc", calc.description, arithmetic, calc.function)])
    for function, names in ((weather, ["city"]), (distance, ["origin", "destination"])):
        parameters = {
            "type": "object",
            "properties": dict.fromkeys(names, city),
            "required": names,
            "additionalProperties": False,
        }
        registry.register(Tool(function.__name__, function.__doc__ or "", parameters, function))
    return registry


REGISTRY = tools()
SPECS = REGISTRY.specs()
CALL = {"anyOf": step_schema(SPECS, ANSWER, answer_only=False)["anyOf"][:-1]}
FINAL = step_schema(SPECS, ANSWER, answer_only=True)


def schema_for(step: int) -> dict:
    return with_json_layout(FINAL if step == STEPS else CALL)


def header() -> str:
    lines = ["You are a travel desk agent. Follow the desk's rules."]
    rules = [
        "Check the weather before you recommend a trip.",
        "Give distances in kilometres and say which route you mean.",
        "Use the calculator for every sum; never do arithmetic in your head.",
        "Answer in one short sentence once you know enough.",
    ]
    for i in range(40):
        lines.append(f"Rule {i + 1}. {rules[i % len(rules)]} It covers desk case {i}.")
    lines.append('A step is one JSON object: a tool call {"tool": NAME, "arguments": {...}} or')
    lines.append(
        'the final answer {"answer": ...}. The result of a call follows as an Observation.'
    )
    lines.append("Tools:")
    lines += [f"- {t.name}: arguments {json.dumps(t.parameters)}" for t in SPECS]
    return "\n".join(lines) + "\n"


def task(i: int) -> str:
    a, b = CITIES[i % len(CITIES)], CITIES[(i * 3 + 1) % len(CITIES)]
    return (
        f"Case {i}: should a client fly from {a} to {b} this week, and what do {i + 2} "
        "tickets cost at 180 each?"
    )


# -- ours -------------------------------------------------------------------------------------


def our_agent(ctx, number: int) -> list[Step]:
    transcript = header() + f"Task: {task(number)}\nStep: "
    steps = []
    for n in range(1, STEPS + 1):
        started = time.perf_counter()
        text = ctx.llm(
            transcript,
            grammar=f"start: %json {json.dumps(schema_for(n))}\n",
            max_tokens=MAX_TOKENS,
            temperature=0,
        )
        latency = time.perf_counter() - started
        tokens = ctx.trace[-1].tokens["completion"]
        step = parsed(text)
        steps.append(Step(transcript, text, tokens, latency, step is not None))
        if step is None or "answer" in step:
            break
        result = ctx.tool(step["tool"], **step["arguments"])
        transcript += f"{text}\nObservation: {result.text()}\nStep: "
    return steps


def run_ours(model: str) -> tuple[float, list[list[Step]], dict]:
    with Client(
        model=model,
        num_slots=AGENTS,
        context_length=CONTEXT,
        max_batch_tokens=512,
        n_threads=THREADS,
    ) as client:
        for name in ("calc", "weather", "distance"):
            client.tools.register(REGISTRY.get(name))
        client.generate_text("Hello", max_tokens=2, grammar='start: "a"')  # warm the mask builder
        started = time.perf_counter()
        handles = [client.run_agent(our_agent, i) for i in range(AGENTS)]
        results = [h.wait(1800) for h in handles]
        makespan = time.perf_counter() - started
        memory = client.memory()
    for result in results:
        assert result.ok, result.error
    cached = sum(e.tokens["cached"] for r in results for e in r.trace if e.syscall == "llm")
    prompt = sum(e.tokens["prompt"] for r in results for e in r.trace if e.syscall == "llm")
    extra = {
        "prompt_tokens": prompt,
        "cached_prompt_tokens": cached,
        "prefix_hits": memory.prefix_hits,
    }
    return makespan, [r.value for r in results], extra


# -- the AIOS way ------------------------------------------------------------------------------


async def post(client: httpx.AsyncClient, body: dict) -> tuple[dict, float]:
    started = time.perf_counter()
    reply = await client.post("/v1/completions", json=body)
    reply.raise_for_status()
    return reply.json(), time.perf_counter() - started


def cached_of(reply: dict) -> int:
    details = (reply.get("usage") or {}).get("prompt_tokens_details") or {}
    return details.get("cached_tokens", (reply.get("timings") or {}).get("cache_n", 0))


async def aios_agent(
    client: httpx.AsyncClient, model: str, number: int, counts: dict
) -> list[Step]:
    transcript = header() + f"Task: {task(number)}\nStep: "
    steps = []
    for n in range(1, STEPS + 1):
        body = {"model": model, "prompt": transcript, "max_tokens": MAX_TOKENS, "temperature": 0}
        reply, latency = await post(client, {**body, "json_schema": schema_for(n)})
        text = reply["choices"][0]["text"]
        tokens = reply["usage"]["completion_tokens"]
        counts["prompt"] += reply["usage"]["prompt_tokens"]
        counts["cached"] += cached_of(reply)
        step = parsed(text)
        steps.append(Step(transcript, text, tokens, latency, step is not None))
        if step is None or "answer" in step:
            break
        result = REGISTRY.call(step["tool"], step["arguments"])
        transcript += f"{text}\nObservation: {result.text()}\nStep: "
    return steps


async def replay_agent(
    client: httpx.AsyncClient, model: str, ours: list[Step], counts: dict
) -> list[Step]:
    steps = []
    for step in ours:
        body = {"model": model, "prompt": step.prompt, "max_tokens": step.completion_tokens}
        reply, latency = await post(client, {**body, "temperature": 0, "ignore_eos": True})
        counts["prompt"] += reply["usage"]["prompt_tokens"]
        counts["cached"] += cached_of(reply)
        tokens = reply["usage"]["completion_tokens"]
        steps.append(Step(step.prompt, reply["choices"][0]["text"], tokens, latency, True))
    return steps


async def run_llama(
    url: str, model: str, ours: list[list[Step]] | None
) -> tuple[float, list, dict]:
    counts = {"prompt": 0, "cached": 0}
    async with new_client(url) as client:
        await post(client, {"model": model, "prompt": "Hello", "max_tokens": 2})
        started = time.perf_counter()
        if ours is None:
            runs = [aios_agent(client, model, i, counts) for i in range(AGENTS)]
        else:
            runs = [replay_agent(client, model, steps, counts) for steps in ours]
        agents = await asyncio.gather(*runs)
        makespan = time.perf_counter() - started
    return (
        makespan,
        agents,
        {"prompt_tokens": counts["prompt"], "cached_prompt_tokens": counts["cached"]},
    )


# -- report ------------------------------------------------------------------------------------


def parsed(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def summary(makespan: float, agents: list[list[Step]], extra: dict) -> dict:
    steps = [s for agent in agents for s in agent]
    latencies = [s.latency_s for s in steps]
    tokens = sum(s.completion_tokens for s in steps)
    return {
        "makespan_s": round(makespan, 2),
        "steps": len(steps),
        "valid_steps": sum(s.valid for s in steps),
        "agents_answered": sum(
            bool(a) and a[-1].valid and "answer" in (parsed(a[-1].text) or {}) for a in agents
        ),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / makespan, 2),
        "step_latency_p50_s": round(statistics.median(latencies), 3),
        "step_latency_p99_s": round(percentile(latencies, 99), 3),
        **extra,
    }


def main() -> None:
    args = arguments(__doc__, repeats=None).parse_args()
    model = default_model_path(Settings.from_environment().home)
    flags = ("-kvu", *Q8_0_KV)
    makespan, ours, extra = run_ours(str(model))
    results = {"llmasos": summary(makespan, ours, extra)}
    print("llmasos", results["llmasos"], flush=True)
    with llama_server(model, slots=AGENTS, context=CONTEXT, threads=THREADS, extra=flags) as url:
        for name, replay in (("aios_llama_server", None), ("llama_server_replay", ours)):
            makespan, agents, extra = asyncio.run(run_llama(url, model.name, replay))
            results[name] = summary(makespan, agents, extra)
            print(name, results[name], flush=True)
    ratios = {
        f"makespan_over_{name}": round(
            results["llmasos"]["makespan_s"] / results[name]["makespan_s"], 3
        )
        for name in ("aios_llama_server", "llama_server_replay")
    }
    report = {
        **report_header("agents_react", __doc__.split("\n\n")[0], model),
        "settings": {
            "agents": AGENTS,
            "steps": STEPS,
            "max_tokens_per_step": MAX_TOKENS,
            "greedy": True,
            "instructions_tokens_approx": 1000,
            "llmasos": f"in-process Client, {AGENTS} slots of {CONTEXT} tokens, "
            f"max_batch_tokens 512, {THREADS} threads, q8_0 K/V",
            "llama_server_flags": f"-np {AGENTS} -kvu -c {AGENTS * CONTEXT} -b 512 -ub 512 "
            f"-t {THREADS} -tb {THREADS} -ctk q8_0 -ctv q8_0 -fa on (prompt cache on by default)",
        },
        "results": results,
        "ratios": ratios,
        "targets": {"makespan_over_aios_max": TARGET},
        "met": {"makespan": ratios["makespan_over_aios_llama_server"] <= TARGET},
    }
    write_report(args.out / "agents_react.json", report)
    names = list(results)
    bar_plot(
        args.out / "agents_react.png",
        groups=["makespan (s)", "step latency p50 (s)", "step latency p99 (s)"],
        series={
            n: [
                results[n]["makespan_s"],
                results[n]["step_latency_p50_s"],
                results[n]["step_latency_p99_s"],
            ]
            for n in names
        },
        title="16 ReAct agents, 4 steps each: lower is better",
    )


if __name__ == "__main__":
    main()
