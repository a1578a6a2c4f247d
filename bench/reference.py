"""llama.cpp's own benchmark tools, run on the same model: llama-batched-bench and llama-bench,
built from the same sdist as our engine by ../shared/tools/build-reference-llama."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from servers import reference_bin


@dataclass(frozen=True)
class LlamaSettings:
    """A llama.cpp configuration, as command-line flags and environment."""

    name: str
    kv_type: str = "q8_0"  # type of K and V
    flash_attention: bool = True
    unified_kv: bool = False
    repack: bool = False  # repacked weights (llama.cpp's default: on)
    tiled_mm: bool = False  # GGML_CPU_TILED_MM (llama.cpp's default: on)

    def flags(self) -> list[str]:
        flags = [
            "-ctk",
            self.kv_type,
            "-ctv",
            self.kv_type,
            "-fa",
            "on" if self.flash_attention else "off",
        ]
        if self.unified_kv:
            flags.append("-kvu")
        if not self.repack:
            flags.append("--no-repack")
        return flags

    def env(self) -> dict[str, str]:
        return {**os.environ, "GGML_CPU_TILED_MM": "1" if self.tiled_mm else "0"}


# What the engine uses (exact batching; see engine/llamacpp.py), and llama.cpp's own defaults
# with the KV type made equal.
OURS = LlamaSettings(
    "as our engine: q8_0 KV, flash attention, KV stream per sequence, no repack, no tiled matmul"
)
DEFAULTS_Q8 = LlamaSettings(
    "llama.cpp defaults with q8_0 KV: flash attention, unified KV, repack, tiled matmul",
    unified_kv=True,
    repack=True,
    tiled_mm=True,
)


def batched_bench(
    model: Path,
    settings: LlamaSettings,
    *,
    prompt_tokens: int,
    output_tokens: int,
    batch_sizes: list[int],
    threads: int,
    context_per_sequence: int,
) -> dict[int, dict]:
    """llama-batched-bench's rows by batch size (its JSONL output), each with
    output_tokens_per_s: the generated tokens over the whole time, prefill included."""
    command = [
        str(reference_bin() / "llama-batched-bench"),
        "-m", str(model),
        "-c", str(max(batch_sizes) * context_per_sequence),
        "-b", "512", "-ub", "512",
        "-t", str(threads), "-tb", str(threads),
        "-npp", str(prompt_tokens), "-ntg", str(output_tokens),
        "-npl", ",".join(map(str, batch_sizes)),
        "--output-format", "jsonl",
        *settings.flags(),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, env=settings.env(), check=True)
    rows = {}
    for line in (out.stdout + out.stderr).splitlines():
        if line.startswith("{") and '"pl"' in line:
            row = json.loads(line)
            row["output_tokens_per_s"] = row["pl"] * row["tg"] / row["t"]
            rows[row["pl"]] = row
    if set(rows) != set(batch_sizes):
        raise SystemExit(
            f"llama-batched-bench gave rows for {sorted(rows)}; see:\n{out.stderr[-2000:]}"
        )
    return rows


def llama_bench_prefill(
    model: Path, settings: LlamaSettings, *, prompt_tokens: list[int], threads: int, repeats: int
) -> dict[int, float]:
    """llama-bench's prompt-processing speed (tokens/s) for each prompt length."""
    command = [
        str(reference_bin() / "llama-bench"),
        "-m", str(model),
        "-p", ",".join(map(str, prompt_tokens)), "-n", "0",
        "-b", "512", "-ub", "512",
        "-t", str(threads), "-r", str(repeats),
        "-ctk", settings.kv_type, "-ctv", settings.kv_type,
        "-fa", "1" if settings.flash_attention else "0",
        "--repack", "1" if settings.repack else "0",
        "-o", "json",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, env=settings.env(), check=True)
    return {row["n_prompt"]: row["avg_ts"] for row in json.loads(out.stdout)}
