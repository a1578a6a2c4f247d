"""JSON-schema constrained generation: output tokens/s with and without a schema, at 1 and 8
concurrent clients, `llmasos serve` (llguidance's token mask) against llama.cpp's `llama-server`
(its GBNF grammar sampler, fed the same JSON schema), same model, threads, slots and context,
in the same run.

Each client streams its requests one after another to /v1/completions: random prompts that share
no prefix, greedy, the same prompts in the same order for every server and mode. Constrained
requests carry the same JSON schema (OpenAI's response_format for ours, llama-server's
json_schema field, which it turns into a grammar). Every constrained output is parsed and
validated; the counts are in the results (an output that max_tokens cut short is not
complete, and cannot be valid). A JSON value is shorter than the free text (which runs to
max_tokens), so its throughput carries more of the prompt's cost; the per-stream decode rate
(output tokens/s after the first) compares the cost per token, and both are reported.

    .venv/bin/python bench/structured.py [--requests-per-client 2]
Writes bench/results/structured.json and .png.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Callable
from contextlib import AbstractContextManager

import jsonschema

from llmasos.benchmark.figures import summarize
from llmasos.benchmark.loadgen import RequestRecord, closed_loop
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import random_prompts
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import default_model_path
from llmasos.settings import Settings
from report import arguments
from servers import Q8_0_KV, llama_server

CONCURRENCY = (1, 8)
SLOTS, CONTEXT, THREADS = 8, 1024, 2
MAX_TOKENS = 96
TARGET = 0.8  # constrained over unconstrained, ours, at 8 clients
SCHEMA = {  # bounded so that a whole value fits MAX_TOKENS
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 24},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
        "rating": {"enum": ["good", "fair", "poor"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["title", "year", "rating", "tags"],
    "additionalProperties": False,
}


def constraint_fields(server: str) -> dict:
    if server == "llmasos":
        named = {"name": "record", "schema": SCHEMA, "strict": True}
        return {"response_format": {"type": "json_schema", "json_schema": named}}
    return {"json_schema": SCHEMA}


def valid(text: str) -> bool:
    try:
        jsonschema.validate(json.loads(text), SCHEMA)
    except (ValueError, jsonschema.ValidationError):
        return False
    return True


def decode_rate(record: RequestRecord) -> float:
    """One stream's output tokens/s after its first token: the cost of the mask per token,
    whatever the length of the output (a JSON value is shorter than free text)."""
    return (record.completion_tokens - 1) / (record.total_s - record.ttft_s)


def measure(
    start: Callable[[], AbstractContextManager[str]], server: str, model: str, per_client: int
) -> dict:
    prompts = iter(random_prompts(1000, seed=5))  # the same sequence for every server
    body = {"model": model, "max_tokens": MAX_TOKENS, "temperature": 0}
    modes = {"free": {}, "json_schema": constraint_fields(server)}
    results: dict = {}
    with start() as url:
        warm = [[{**body, **f, "prompt": "Hello", "max_tokens": 4} for f in modes.values()]]
        asyncio.run(closed_loop(url, "/v1/completions", warm))
        for c in CONCURRENCY:
            for mode, fields in modes.items():
                count = max(per_client, 4 // c)
                bodies = [
                    [
                        {**body, **fields, "prompt": next(prompts) + " As JSON:"}
                        for _ in range(count)
                    ]
                    for _ in range(c)
                ]
                records, wall = asyncio.run(closed_loop(url, "/v1/completions", bodies))
                row = summarize(records, wall)
                row["decode_tokens_per_s_per_stream_p50"] = round(
                    statistics.median(decode_rate(r) for r in records), 2
                )
                if mode == "json_schema":
                    row["complete_outputs"] = sum(r.finish_reason == "stop" for r in records)
                    row["valid_outputs"] = sum(valid(r.text) for r in records)
                results[f"{mode}_c{c}"] = row
                print(f"{server:18s} {mode:11s} C={c} {row}", flush=True)
    return results


def rate(results: dict, server: str, key: str, metric: str = "throughput_tokens_per_s") -> float:
    return results[server][key][metric]


def ratios_of(results: dict) -> dict[str, float]:
    """Constrained over free for each server, and ours over llama-server under the schema, by
    throughput and by per-stream decode rate."""
    ratios = {}
    for metric, label in (
        ("throughput_tokens_per_s", "throughput"),
        ("decode_tokens_per_s_per_stream_p50", "decode"),
    ):
        for c in CONCURRENCY:
            for server in results:
                constrained = rate(results, server, f"json_schema_c{c}", metric)
                free = rate(results, server, f"free_c{c}", metric)
                ratios[f"{server}_schema_over_free_{label}_c{c}"] = round(constrained / free, 3)
            ours = rate(results, "llmasos", f"json_schema_c{c}", metric)
            theirs = rate(results, "llama_server_q8_0", f"json_schema_c{c}", metric)
            ratios[f"schema_ours_over_llama_server_{label}_c{c}"] = round(ours / theirs, 3)
    return ratios


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--requests-per-client", type=int, default=2)
    args = parser.parse_args()
    model = default_model_path(Settings.from_environment().home)
    sizes = {"slots": SLOTS, "context": CONTEXT, "threads": THREADS}
    q8 = Q8_0_KV
    per_client = args.requests_per_client
    results = {
        "llmasos": measure(
            lambda: llmasos_server(**sizes), "llmasos", "gemma3-270m:q4_k_m", per_client
        ),
        "llama_server_q8_0": measure(
            lambda: llama_server(model, **sizes, extra=q8), "llama_server", model.name, per_client
        ),
    }

    ratios = ratios_of(results)
    report = {
        **report_header("structured", __doc__.split("\n\n")[0], model),
        "settings": {
            "schema": SCHEMA,
            "max_tokens": MAX_TOKENS,
            "greedy": True,
            "slots": SLOTS,
            "context_per_slot": CONTEXT,
            "threads": THREADS,
            "llmasos": "llguidance 1.9.1 token mask, response_format json_schema",
            "llama_server": "json_schema field, converted by llama.cpp to GBNF and applied by its "
            "grammar sampler (built without LLAMA_LLGUIDANCE)",
            "llama_server_flags": f"-np {SLOTS} -c {SLOTS * CONTEXT} -b 512 -ub 512 "
            f"-t {THREADS} -tb {THREADS} -ctk q8_0 -ctv q8_0 -fa on",
        },
        "results": results,
        "ratios": ratios,
        "targets": {"llmasos_schema_over_free_c8_min": TARGET},
        "met": {
            "schema_over_free_decode_c8": ratios["llmasos_schema_over_free_decode_c8"] >= TARGET,
            "schema_over_free_throughput_c8": ratios["llmasos_schema_over_free_throughput_c8"]
            >= TARGET,
        },
    }
    write_report(args.out / "structured.json", report)
    groups = [f"{mode} C={c}" for c in CONCURRENCY for mode in ("free", "json_schema")]
    bar_plot(
        args.out / "structured.png",
        groups=groups,
        series={
            server: [rate(results, server, f"{g.split()[0]}_c{g.split('=')[1]}") for g in groups]
            for server in results
        },
        title="Output tokens/s, free and under a JSON schema (higher is better)",
    )


if __name__ == "__main__":
    main()
