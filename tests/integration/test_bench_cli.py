"""`llmasos bench`: every workload on a tiny setting against a real `llmasos serve`, its JSON and
PNG, a second server with --compare, and a local server started for the run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.test_server import LLMASOS, start_server, stop_server

HEADER = ("benchmark", "description", "date", "commit", "machine", "llama_cpp_python", "model")


def bench(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LLMASOS, "bench", *map(str, args)], capture_output=True, text=True, timeout=280
    )


def run_saved(tmp_path: Path, *args: str) -> tuple[dict, Path]:
    """`llmasos bench ARGS --json --plot`: the report and the PNG's path."""
    report_path, plot_path = tmp_path / "figures.json", tmp_path / "figures.png"
    done = bench(*args, "--json", report_path, "--plot", plot_path)
    assert done.returncode == 0, done.stderr
    return json.loads(report_path.read_text()), plot_path


def assert_png(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > 1000 and height > 300  # three panels


def only_side(report: dict) -> dict:
    (figures,) = report["results"].values()
    assert figures["errors"] == 0, figures["error_examples"]
    return figures


@pytest.mark.parametrize(
    ("workload", "requests"), [("throughput", 4), ("serve", 4), ("agents", 4), ("priority", None)]
)
def test_each_workload_writes_its_figures_as_json_and_a_png(url, tmp_path, workload, requests):
    report, plot = run_saved(tmp_path, workload, "--quick", "--url", url)
    assert all(report[key] for key in HEADER)
    assert report["benchmark"] == workload
    assert report["settings"]["quick"] is True
    figures = only_side(report)
    if requests is not None:
        assert figures["requests"] == requests
    assert figures["completion_tokens"] > 0
    assert figures["ttft_p50_s"] <= figures["latency_p50_s"]
    assert figures["throughput_tokens_per_s"] > 0
    assert_png(plot)
    if workload == "agents":  # later turns extend their own conversation and the shared prompt
        assert figures["groups"]["later_turns"]["prefix_hit_rate"] > 0.5
    if workload == "priority":
        groups = figures["groups"]
        assert groups["probes_idle"]["requests"] == groups["probes_loaded"]["requests"] == 2
        assert groups["background"]["requests"] >= 2
        assert figures["probe_ttft_loaded_over_idle"] > 0


def test_swap_on_a_local_server_preempts_and_every_text_equals_its_text_alone(tmp_path):
    report, plot = run_saved(tmp_path, "swap", "--quick")  # no --url: a local server, 2 slots
    figures = only_side(report)
    assert report["settings"]["servers"]["llmasos-local"]["url"] == "local llmasos serve"
    assert figures["requests"] == 4
    assert figures["swap_outs"] >= 1
    assert figures["exact_text_rate"] == 1.0
    assert_png(plot)


def test_compare_runs_the_same_workload_on_a_second_server_and_prints_ratios(url, tmp_path):
    second, second_url = start_server()
    try:
        done = bench("serve", "--quick", "--url", url, "--compare", second_url)
        report, _ = run_saved(
            tmp_path, "throughput", "--quick", "--url", url, "--compare", second_url
        )
    finally:
        stop_server(second)
    assert done.returncode == 0, done.stderr
    assert "ratio" in done.stdout and "throughput_tokens_per_s" in done.stdout
    first_label, second_label = report["results"]
    assert {first_label, second_label} == {
        url.removeprefix("http://"),
        second_url.removeprefix("http://"),
    }
    (ratios,) = report["ratios"].values()
    ours, theirs = (report["results"][side] for side in (first_label, second_label))
    expected = round(ours["throughput_tokens_per_s"] / theirs["throughput_tokens_per_s"], 3)
    assert ratios["throughput_tokens_per_s"] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("throughput", "--rate", "3"), "--rate applies to the serve workload only"),
        (("serve", "--concurrency", "0"), "--concurrency"),
        (("serve", "--max-tokens", "9000"), "--max-tokens"),
        (("nonsense",), "workload"),
        (("serve", "--quick", "--url", "http://127.0.0.1:9"), "cannot reach http://127.0.0.1:9"),
    ],
)
def test_bad_options_and_an_unreachable_server_are_clear_errors(args, message):
    done = bench(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
