"""`llmasos bench`'s logic: summaries, ratios, counters read from /metrics, server roots, and
how a stream's ending is read (over httpx's mock transport)."""

from __future__ import annotations

import asyncio
import json

import httpx

from llmasos.benchmark.figures import figures_of, ratios, summarize
from llmasos.benchmark.loadgen import RequestRecord
from llmasos.benchmark.session import Session, Target, counter_sum
from llmasos.benchmark.workloads import Outcome
from llmasos.cli.bench import server_root


def record(ttft: float, total: float, tokens: int, cached: int = 0) -> RequestRecord:
    return RequestRecord(ttft, total, tokens, 10, cached, "x" * tokens)


def test_a_summary_counts_rates_spreads_and_time_per_output_token():
    records = [record(0.1, 1.1, 11), record(0.3, 2.3, 21, cached=5), record(0.2, 0.2, 1)]
    figures = summarize(records, wall_s=4.0)
    assert figures["requests"] == 3 and figures["completion_tokens"] == 33
    assert figures["throughput_tokens_per_s"] == 8.25
    assert figures["requests_per_s"] == 0.75
    assert figures["ttft_p50_s"] == 0.2 and figures["latency_p50_s"] == 1.1
    assert figures["tpot_p50_s"] == 0.1  # (1.1-0.1)/10 and (2.3-0.3)/20; one token has none
    assert figures["prefix_hit_rate"] == round(5 / 30, 4)


def test_an_empty_run_has_no_spreads_instead_of_failing():
    figures = summarize([], wall_s=1.0)
    assert figures["requests"] == 0
    assert figures["ttft_p50_s"] is None and figures["prefix_hit_rate"] is None


def test_probe_ratio_and_groups_leave_the_untimed_group_out_of_the_whole_run():
    idle = [record(0.1, 0.2, 2), record(0.1, 0.2, 2)]
    loaded = [record(0.3, 0.5, 2), record(0.5, 0.6, 2)]
    outcome = Outcome(
        2.0, {"probes_idle": idle, "probes_loaded": loaded}, outside_wall=("probes_idle",)
    )
    figures = figures_of(outcome, ["HTTP 500 from /v1/completions"] * 2)
    assert figures["requests"] == 2
    assert figures["probe_ttft_loaded_over_idle"] == 4.0
    assert figures["groups"]["probes_idle"]["requests"] == 2
    assert figures["errors"] == 2 and figures["error_examples"] == ["HTTP 500 from /v1/completions"]


def test_ratios_cover_figures_both_sides_have_and_skip_missing_or_zero():
    ours = {"throughput_tokens_per_s": 30.0, "ttft_p50_s": 0.2, "swap_outs": 3, "tpot_p50_s": None}
    theirs = {"throughput_tokens_per_s": 20.0, "ttft_p50_s": 0.0, "tpot_p50_s": 0.1}
    assert ratios(ours, theirs) == {"throughput_tokens_per_s": 1.5}


def test_a_counter_sums_the_series_with_the_label_asked_for():
    exposition = "\n".join(
        [
            "# TYPE llmasos_swaps_total counter",
            'llmasos_swaps_total{direction="out",model="a"} 3.0',
            'llmasos_swaps_total{direction="in",model="a"} 2.0',
            'llmasos_swaps_total{direction="out",model="b"} 4.0',
            "llmasos_swaps_total_created 1.7e9",
        ]
    )
    assert counter_sum(exposition, "llmasos_swaps_total", 'direction="out"') == 7.0
    assert counter_sum(exposition, "llmasos_swaps_total") == 9.0
    assert counter_sum(exposition, "llmasos_page_faults_total") is None


def test_a_server_is_named_by_its_root_whatever_the_suffix():
    assert server_root("http://h:8000/v1/") == server_root("http://h:8000") == "http://h:8000"
    assert server_root(None) is None


def sse(*chunks: dict | str) -> httpx.MockTransport:
    lines = [c if isinstance(c, str) else f"data: {json.dumps(c)}" for c in chunks]
    body = "\n\n".join(lines).encode()
    return httpx.MockTransport(lambda request: httpx.Response(200, content=body))


def test_a_stream_that_ends_with_an_error_chunk_is_a_failed_request_not_a_success():
    transport = sse({"choices": [{"text": "a"}]}, {"error": {"message": "engine failed"}})

    async def send() -> tuple:
        async with httpx.AsyncClient(base_url="http://test", transport=transport) as client:
            session = Session(Target("t", "http://test"), client)
            return await session.send(session.body("x", 4)), session.errors

    record, errors = asyncio.run(send())
    assert record is None
    assert len(errors) == 1 and "engine failed" in errors[0]


def test_a_stream_without_usage_counts_its_text_chunks():
    transport = sse({"choices": [{"text": "a"}]}, {"choices": [{"text": "b"}]}, "data: [DONE]")

    async def send() -> RequestRecord | None:
        async with httpx.AsyncClient(base_url="http://test", transport=transport) as client:
            session = Session(Target("t", "http://test"), client)
            return await session.send(session.body("x", 4))

    record = asyncio.run(send())
    assert record.text == "ab" and record.completion_tokens == 2
    assert record.usage_reported is False
