"""Embeddings: inputs embedded per second by POST /v1/embeddings, `llmasos serve` against
llama.cpp's `llama-server --embeddings` on the same GGUF (the default embedding model,
all-minilm-l6-v2:f32, as our converter wrote it), same threads and batch size, in the same run.

Three workloads of short sentences (10-20 tokens): one client sending lists of 64 texts, one
sending lists of 16, and 4 concurrent clients sending one text per request. The servers get the
same texts in the same order; inputs/s is texts over wall time. The two servers' vectors for
the same texts are compared (cosine) to show they compute the same thing.

    .venv/bin/python bench/embeddings.py [--texts 512]
Writes bench/results/embeddings.json and .png.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import numpy as np

from llmasos.benchmark.loadgen import new_client
from llmasos.benchmark.local_server import llmasos_server
from llmasos.benchmark.prompts import WORDS
from llmasos.benchmark.report import bar_plot, report_header, write_report
from llmasos.models.default import (
    DEFAULT_EMBEDDING_MODEL,
    default_embedding_model_path,
    default_model_path,
)
from llmasos.settings import Settings
from report import arguments
from servers import llama_server

THREADS, BATCH_TOKENS = 2, 512
WORKLOADS = {"lists of 64": (1, 64), "lists of 16": (1, 16), "single, 4 clients": (4, 1)}


def sentences(count: int, seed: int = 9) -> list[str]:
    rng = random.Random(seed)
    return [
        "The " + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(8, 16))) + "."
        for _ in range(count)
    ]


async def embed_all(url: str, model: str, texts: list[str], clients: int, per_request: int):
    """Every text embedded, `clients` at a time, `per_request` texts per request; the vectors
    in text order and the wall time."""
    chunks = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    vectors: list[list[float] | None] = [None] * len(texts)
    queue = list(enumerate(chunks))
    async with new_client(url) as client:

        async def worker() -> None:
            while queue:
                index, chunk = queue.pop(0)
                body = {"model": model, "input": chunk if per_request > 1 else chunk[0]}
                response = await client.post("/v1/embeddings", json=body)
                response.raise_for_status()
                for item in response.json()["data"]:
                    vectors[index * per_request + item["index"]] = item["embedding"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return np.array(vectors, dtype=np.float64), wall


def measure(
    start: Callable[[], AbstractContextManager[str]], model: str, texts: list[str]
) -> tuple[dict, np.ndarray]:
    rows = {}
    with start() as url:
        asyncio.run(embed_all(url, model, texts[:8], 1, 8))  # warm-up
        for name, (clients, per_request) in WORKLOADS.items():
            vectors, wall = asyncio.run(embed_all(url, model, texts, clients, per_request))
            rows[name] = {"inputs": len(texts), "wall_s": round(wall, 3)}
            rows[name]["inputs_per_s"] = round(len(texts) / wall, 1)
            print(f"{model:26s} {name:18s} {rows[name]}", flush=True)
    return rows, vectors


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--texts", type=int, default=512)
    args = parser.parse_args()
    home = Settings.from_environment().home
    default_model_path(home)  # the generation model our server starts with
    gguf = default_embedding_model_path(home)
    texts = sentences(args.texts)
    ours = lambda: llmasos_server(slots=4, context=512, threads=THREADS)  # noqa: E731
    theirs = lambda: llama_server(  # noqa: E731
        gguf, slots=16, context=BATCH_TOKENS, threads=THREADS, extra=("--embeddings",)
    )
    results, vectors = {}, {}
    results["llmasos"], vectors["llmasos"] = measure(ours, DEFAULT_EMBEDDING_MODEL, texts)
    results["llama_server"], vectors["llama_server"] = measure(theirs, gguf.name, texts)
    cosines = np.sum(vectors["llmasos"] * vectors["llama_server"], axis=1) / (
        np.linalg.norm(vectors["llmasos"], axis=1) * np.linalg.norm(vectors["llama_server"], axis=1)
    )
    ratios = {
        name: round(results["llmasos"][name]["inputs_per_s"] / row["inputs_per_s"], 3)
        for name, row in results["llama_server"].items()
    }
    report = {
        **report_header("embeddings", __doc__.split("\n\n")[0], gguf),
        "settings": {
            "texts": args.texts,
            "threads": THREADS,
            "llmasos": f"max_batch_tokens {BATCH_TOKENS} per pass (the model's context)",
            "llama_server_flags": f"--embeddings -np 16 -c {16 * BATCH_TOKENS} "
            f"-b {BATCH_TOKENS} -ub {BATCH_TOKENS} -t {THREADS} -tb {THREADS}",
        },
        "results": results,
        "ours_over_llama_server": ratios,
        "min_cosine_between_servers": round(float(cosines.min()), 6),
    }
    write_report(args.out / "embeddings.json", report)
    bar_plot(
        args.out / "embeddings.png",
        groups=list(WORKLOADS),
        series={name: [r[w]["inputs_per_s"] for w in WORKLOADS] for name, r in results.items()},
        title="Texts embedded per second by POST /v1/embeddings (higher is better)",
    )


if __name__ == "__main__":
    main()
