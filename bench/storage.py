"""Storage: file operations per second through the storage service's FileSystemView against the
same operations as plain SQL on the same database engine with the same durability, and archival
memory search (MemoryStore.search: sqlite-vec, exact; pgvector HNSW, approximate) against numpy
brute force at 10k and 100k entries, on SQLite and on PostgreSQL, in the same run.

File operations (both backends): `--writes` 1 KiB writes spread round-robin over `--paths`
paths (so each path gets writes/paths versions), `--reads` reads of a path's latest version,
`--histories` listings of a path's every version. The baseline is one table (path, version,
data) on the same engine with the same durability and one reused connection: SQLite through
sqlean in WAL with synchronous=FULL, PostgreSQL (the same TemporaryPostgres server, fsync on,
synchronous_commit on) in its own database through psycopg in autocommit; a write is one
INSERT ... SELECT max(version) + 1 in its own transaction, a read is SELECT ... ORDER BY version
DESC LIMIT 1, a history is SELECT version, length(data) ... ORDER BY version.

Archival search: `--real` synthetic but varied sentences embedded with the default embedding
model (LocalEmbed, all-MiniLM-L6-v2), plus vectors derived from them (the real ones plus
Gaussian noise, renormalised) up to `--total`, inserted through MemoryStore.add_entries under
one agent's scope as AgentMemory does; `--queries` held-out sentences (embedded, never inserted)
searched through MemoryStore.search with k=10. Ground truth is exact cosine kNN in numpy
(float64); the baseline is numpy brute force (float32 matrix-vector product and argpartition)
timed per query on the same vectors.

    .venv/bin/python bench/storage.py [--writes 2000 --reads 5000 --histories 1000]
Writes bench/results/storage.json and .png.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlean
import sqlite_vec

from llmasos.benchmark.report import report_header, write_report
from llmasos.models.default import default_embedding_model_path
from llmasos.runtime.embedding import LocalEmbed
from llmasos.settings import Settings
from llmasos.storage.agent_memory import ARCHIVAL
from llmasos.storage.paths import Principal
from llmasos.storage.pg_local import PostgresUnavailable, TemporaryPostgres
from llmasos.storage.records import MemoryEntry
from llmasos.storage.service import Storage, StorageConfig
from report import arguments

K = 10
FILE_BYTES = 1024
NOISE_SIGMA = 0.03  # per component, on unit vectors of 384 dimensions: cosine to the source ~0.86
INSERT_BATCH = 1000
BLOCKS = 10  # file operations: ours and the baseline alternate in this many blocks
FILES_OWNER = Principal("bench-files")
MEMORY_AGENT = Principal("bench-memory", "archivist")
Execute = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]

PLAIN_TABLE = (
    "CREATE TABLE plain_files (path TEXT NOT NULL, version {INT} NOT NULL, data {BLOB} NOT "
    "NULL, PRIMARY KEY (path, version))"
)
PLAIN_WRITE = (
    "INSERT INTO plain_files (path, version, data) SELECT ?, coalesce(max(version), 0) + 1, ? "
    "FROM plain_files WHERE path = ?"
)
PLAIN_READ = "SELECT data FROM plain_files WHERE path = ? ORDER BY version DESC LIMIT 1"
PLAIN_HISTORY = "SELECT version, length(data) FROM plain_files WHERE path = ? ORDER BY version"

# -- sentences: facts an agent might keep, from templates over several vocabularies -----------

VOCABULARY = {  # comma-separated choices for each {field} of the templates
    "name": "Ana, Bruno, Chen, Dara, Elif, Farid, Greta, Hugo, Ines, Jonas, Kaito, Lena, Malik, "
    "Nora, Omar, Priya, Quinn, Rosa, Sami, Tomas, Uma, Viktor, Wen, Yara, Zoe, Amir, Cyril",
    "city": "Lisbon, Osaka, Nairobi, Lima, Oslo, Hanoi, Quito, Tbilisi, Porto, Accra, Bergen, "
    "Cusco, Krakow, Seville, Dakar, Hobart, Tallinn, Kyoto, Marrakesh, Reykjavik, Ghent, Izmir",
    "relation": "sister, brother, mother, father, cousin, neighbour, manager, landlord, aunt, "
    "uncle, grandmother, roommate, colleague, mentor, friend",
    "job": "nurse, carpenter, pilot, baker, translator, architect, chemist, teacher, plumber, "
    "journalist, veterinarian, welder, librarian, pharmacist, accountant, surveyor",
    "food": "ramen, lentil soup, oatmeal, sushi, tacos, falafel, porridge, dumplings, paella, "
    "risotto, pancakes, curry, goulash, ceviche, bagels, couscous",
    "meal": "breakfast, lunch, dinner, brunch, supper",
    "skill": "Portuguese, pottery, chess, calligraphy, the cello, rock climbing, sailing, "
    "welding, Japanese, knitting, astronomy, salsa dancing",
    "month": "January, February, March, April, May, June, July, August, September, October, "
    "November, December",
    "weekday": "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday",
    "project": "billing, search, onboarding, payroll, telemetry, checkout, inventory, "
    "reporting, scheduler, mobile app, data pipeline, migration",
    "pet": "cat, dog, parrot, rabbit, tortoise, hamster, ferret, goldfish",
    "petname": "Biscuit, Pepper, Mochi, Luna, Otto, Ziggy, Clementine, Waffles, Pixel, Basil",
    "allergen": "chicken, grain, pollen, dust mites, beef, dairy, fleas, peanuts",
    "topic": "Byzantine trade, glaciers, bread chemistry, the printing press, whale songs, "
    "volcanoes, Antarctic exploration, jazz history, mushrooms",
    "component": "the parser, the login form, the export job, the image resizer, the cache "
    "layer, the PDF renderer, the sync daemon, the webhook",
    "error": "a null pointer, a timeout, an out-of-memory error, a deadlock, a segfault, a "
    "division by zero",
    "device": "phone, laptop, tablet, watch, e-reader, headphones",
    "app": "the maps app, the calendar, the firmware, the browser, the camera app",
    "event": "the cherry blossoms, a football final, the jazz festival, the northern lights, a "
    "flamenco show, the marathon",
    "amount": "12, 35, 48, 60, 75, 120, 240, 399, 820",
    "purchase": "a bicycle helmet, winter boots, a coffee grinder, concert tickets, a desk "
    "lamp, hiking poles, a rice cooker",
    "shop": "market, hardware store, bookshop, pharmacy, bakery, outlet",
    "plant": "basil, tomatoes, roses, fig trees, mint, lavender, orchids, ferns",
    "number": "3, 5, 8, 10, 12, 15, 21",
    "place": "river, harbour, canal, beach, park, ridge, lake",
    "weather": "rainy, sunny, foggy, windy, snowy, humid",
    "landmark": "old cathedral, fish market, botanical garden, castle, museum",
}
TEMPLATES = [
    "{name}'s {relation} lives in {city} and works as a {job}.",
    "The user prefers {food} for {meal} but never eats it on {weekday}.",
    "{name} started learning {skill} in {month} after a trip to {city}.",
    "The meeting with {name} about the {project} project moved to {weekday}.",
    "The {pet} called {petname} is allergic to {allergen}.",
    "{name} recommended a book about {topic} to the user's {relation}.",
    "The {project} service fails with {error} every {weekday} night.",
    "Bug: {component} crashes with {error} when the input is empty.",
    "In {city}, {name} visited the {landmark} on a {weather} {weekday}.",
    "The user's {device} battery drains fast since updating {app}.",
    "{name} plans a trip to {city} in {month} to see {event}.",
    "{name} paid {amount} dollars for {purchase} at the {shop} in {city}.",
    "The {plant} on the balcony need water every {weekday} in {month}.",
    "{name} ran {number} kilometres along the {place} before {meal}.",
    "Remind the user to call their {relation} {name} about {purchase}.",
    "The {job} {name} fixed the {project} dashboard on a {weather} morning.",
]


def sentences(count: int, seed: int = 11) -> list[str]:
    """`count` different sentences."""
    rng, found = random.Random(seed), dict[str, None]()
    choices = {field: words.split(", ") for field, words in VOCABULARY.items()}
    while len(found) < count:
        template = rng.choice(TEMPLATES)
        fields = {field: rng.choice(words) for field, words in choices.items()}
        found[template.format(**fields)] = None
    return list(found)


# -- file operations ----------------------------------------------------------------------------


def interleaved(
    count: int, ours: Callable[[int], object], base: Callable[[int], object]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both operations on inputs 0..count-1 in BLOCKS alternating blocks (ours first in even
    blocks), so that drift in the machine (fsync latency varies a lot here) falls on both."""
    bounds = [count * b // BLOCKS for b in range(BLOCKS + 1)]
    walls: list[list[float]] = [[], []]
    for b in range(BLOCKS):
        sides = [(0, ours), (1, base)] if b % 2 == 0 else [(1, base), (0, ours)]
        for side, operation in sides:
            started = time.perf_counter()
            for i in range(bounds[b], bounds[b + 1]):
                operation(i)
            walls[side].append(time.perf_counter() - started)
    figures = []
    for side_walls in walls:
        rates = [(bounds[b + 1] - bounds[b]) / w for b, w in enumerate(side_walls)]
        figures.append({
            "ops": count,
            "wall_s": round(sum(side_walls), 3),
            "ops_per_s": round(count / sum(side_walls), 1),
            "block_ops_per_s_min_max": [round(min(rates), 1), round(max(rates), 1)],
        })  # fmt: skip
    return figures[0], figures[1]


def plain_sqlite(path: Path) -> Execute:
    connection = sqlean.connect(str(path), isolation_level=None)  # autocommit: a tx per statement
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(PLAIN_TABLE.format(INT="INTEGER", BLOB="BLOB"))
    return lambda sql, params: connection.execute(sql, params).fetchall()


def plain_postgres(url: str) -> Execute:
    connection = psycopg.connect(url, autocommit=True)
    connection.execute(PLAIN_TABLE.format(INT="BIGINT", BLOB="BYTEA"))
    cursor = connection.cursor()

    def execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor.execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []

    return execute


def file_ops(storage: Storage, plain: Execute, args: Any) -> dict[str, Any]:
    """The three operations through FileSystemView and as plain SQL, same inputs in the same
    order; both answers checked at the end."""
    view = storage.files(FILES_OWNER)
    rng = random.Random(5)
    paths = [f"projects/bench/file-{i:04d}.txt" for i in range(args.paths)]
    order = [paths[i % len(paths)] for i in range(args.writes)]
    payloads = [rng.randbytes(FILE_BYTES) for _ in range(args.writes)]
    reads = [rng.choice(paths) for _ in range(args.reads)]
    histories = [rng.choice(paths) for _ in range(args.histories)]
    for i in range(20):  # warm-up: connections, statement caches, pages
        warm = f"warm/w-{i % 4}.txt"
        view.write(warm, payloads[i])
        view.read(warm)
        view.history(warm)
        plain(PLAIN_WRITE, (warm, payloads[i], warm))
        plain(PLAIN_READ, (warm,))
        plain(PLAIN_HISTORY, (warm,))
    ours: dict[str, Any] = {}
    base: dict[str, Any] = {}
    ours["write"], base["write"] = interleaved(
        args.writes,
        lambda i: view.write(order[i], payloads[i]),
        lambda i: plain(PLAIN_WRITE, (order[i], payloads[i], order[i])),
    )
    ours["read"], base["read"] = interleaved(
        args.reads, lambda i: view.read(reads[i]), lambda i: plain(PLAIN_READ, (reads[i],))
    )
    ours["history"], base["history"] = interleaved(
        args.histories,
        lambda i: view.history(histories[i]),
        lambda i: plain(PLAIN_HISTORY, (histories[i],)),
    )
    latest = dict(zip(order, payloads, strict=True))
    versions = args.writes // args.paths
    for path, data in latest.items():
        assert view.read(path) == data and plain(PLAIN_READ, (path,))[0][0] == data, path
        assert len(view.history(path)) == versions == len(plain(PLAIN_HISTORY, (path,))), path
    ratios = {op: round(ours[op]["ops_per_s"] / base[op]["ops_per_s"], 3) for op in ours}
    for op in ours:
        print(f"  {op:8s} ours {ours[op]['ops_per_s']:9.1f}/s  plain SQL "
              f"{base[op]['ops_per_s']:9.1f}/s  ratio {ratios[op]}", flush=True)  # fmt: skip
    return {"ours": ours, "plain_sql": base, "ours_over_plain_sql": ratios}


# -- archival search ----------------------------------------------------------------------------


def exact_top(matrix64: np.ndarray, queries64: np.ndarray, k: int) -> list[np.ndarray]:
    """Row indices of the k largest cosines (unit vectors: dot products), best first."""
    scores = queries64 @ matrix64.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return [row[np.argsort(-scores[i, row])] for i, row in enumerate(top)]


def numpy_search(matrix: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = matrix @ query
    top = np.argpartition(-scores, k)[:k]
    return top[np.argsort(-scores[top])]


def latency(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    return {
        "ms_per_query_median": round(statistics.median(ms), 3),
        "ms_per_query_p95": round(ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))], 3),
        "ms_per_query_mean": round(statistics.fmean(ms), 3),
    }


def one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread, as sqlite-vec and a PostgreSQL backend search on one (threadpoolctl
    where installed; otherwise BLAS keeps its default threads)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def numpy_baseline(matrix: np.ndarray, queries: np.ndarray, truth: list[np.ndarray]) -> dict:
    with one_blas_thread():
        for q in queries[:5]:
            numpy_search(matrix, q, K)
        times, hits = [], 0
        for q, exact in zip(queries, truth, strict=True):
            started = time.perf_counter()
            found = numpy_search(matrix, q, K)
            times.append(time.perf_counter() - started)
            hits += len(set(found.tolist()) & set(exact.tolist()))
    return {**latency(times), "recall_at_10": round(hits / (K * len(queries)), 4)}


def blas_threads() -> str:
    """The BLAS threads numpy_baseline searches with."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "the BLAS default (threadpoolctl is not installed)"
    with one_blas_thread():
        pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    return ", ".join(f"{p['num_threads']} ({p['internal_api']})" for p in pools) or "unknown"


class Archive:
    """The vectors and texts of the archival entries, and the keys they are stored under."""

    def __init__(self, texts: list[str], real: np.ndarray, total: int, seed: int = 3) -> None:
        rng = np.random.default_rng(seed)
        extra = total - len(real)
        sources = np.arange(extra) % len(real)
        noisy = real[sources] + rng.normal(0.0, NOISE_SIGMA, (extra, real.shape[1]))
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        self.matrix = np.ascontiguousarray(np.vstack([real, noisy]), dtype=np.float32)
        self.source_cosine = float(np.mean(np.sum(noisy * real[sources], axis=1))) if extra else 1
        self.texts = texts
        keys = random.Random(seed)
        self.keys = [keys.getrandbits(62) + 1 for _ in range(total)]  # as AgentMemory draws them
        assert len(set(self.keys)) == total
        self.index = {key: i for i, key in enumerate(self.keys)}

    def text(self, i: int) -> str:
        n = len(self.texts)
        return self.texts[i] if i < n else f"{self.texts[i % n]} (variant {i // n})"

    def load(self, storage: Storage, start: int, stop: int) -> float:
        """Insert entries [start, stop) through MemoryStore.add_entries; the seconds it took."""
        agent, started = MEMORY_AGENT, time.perf_counter()
        for first in range(start, stop, INSERT_BATCH):
            rows = range(first, min(stop, first + INSERT_BATCH))
            now = time.time()
            entries = [
                MemoryEntry(self.keys[i], agent.owner, agent.name, ARCHIVAL, 0, "note",
                            self.text(i).encode(), now)
                for i in rows
            ]  # fmt: skip
            with storage.store.routed(agent.owner) as shard:
                shard.memory.add_entries(entries, [self.matrix[i] for i in rows])
        return time.perf_counter() - started


def search_ours(storage: Storage, queries: np.ndarray, truth: list[np.ndarray], index: dict):
    agent = MEMORY_AGENT

    def search(q: np.ndarray) -> list:
        with storage.store.routed(agent.owner) as shard:
            return shard.memory.search(agent.name, ARCHIVAL, q, K)

    for q in queries[:5]:
        search(q)
    times, hits, short = [], 0, 0
    for q, exact in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = search(q)
        times.append(time.perf_counter() - started)
        short += len(found) < K
        hits += len({index[e.key] for e, _ in found} & set(exact.tolist()))
    result = {**latency(times), "recall_at_10": round(hits / (K * len(queries)), 4)}
    if short:
        result["queries_with_fewer_than_k_hits"] = short
    return result


def postgres_plan(storage: Storage, query: np.ndarray) -> str:
    """The plan PostgreSQL chooses for MemoryStore.search's statement, one line per node."""
    with storage.store.routed(MEMORY_AGENT.owner) as shard:
        table = shard.db.ensure_vectors(len(query))
        with shard.db.transaction(write=False) as tx:
            tx.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rows = tx.execute(
                f"EXPLAIN SELECT key, embedding <=> ? AS distance FROM {table} WHERE scope = ? "
                "ORDER BY embedding <=> ? LIMIT ?",
                (query, f"{MEMORY_AGENT.name}\x1f{ARCHIVAL}", query, K),
            )
    plan = " | ".join(" ".join(str(r[0]).split()) for r in rows)
    return re.sub(r"'\[[^\]]*\]'::vector", "'[query]'::vector", plan)


def archival(storage: Storage, archive: Archive, queries: np.ndarray, sizes, truth) -> dict:
    rows, loaded = {}, 0
    for size in sizes:
        insert_s = archive.load(storage, loaded, size)
        loaded = size
        row = {"entries": size, "insert_s": round(insert_s, 2)}
        row.update(search_ours(storage, queries, truth[size], archive.index))
        if storage.store.catalog.db.dialect == "postgres":
            row["plan"] = postgres_plan(storage, queries[0])
            row["uses_hnsw_index"] = "_hnsw" in row["plan"]
        print(f"  {size:7d} entries {row}", flush=True)
        rows[str(size)] = row
    return rows


# -- the run ------------------------------------------------------------------------------------


def backend(name: str, config: StorageConfig, plain: Execute, args: Any, search: tuple) -> dict:
    print(f"{name}: file operations", flush=True)
    storage = Storage(config)
    try:
        result = {"file_ops": file_ops(storage, plain, args)}
        print(f"{name}: archival search", flush=True)
        result["archival_search"] = archival(storage, *search)
    finally:
        storage.close()
    return result


def filesystem(path: Path | None) -> str:
    """The mount `path` is on and its type (tmpfs would make fsync free)."""
    if path is None:
        return "unknown"
    mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    resolved = str(path.resolve())
    point, kind = max(
        ((m, t) for m, t in mounts if resolved == m or resolved.startswith(m.rstrip("/") + "/")),
        key=lambda mount: len(mount[0]),
        default=("?", "unknown"),
    )
    return f"{resolved} on {point} ({kind})"


def versions(pg_url: str | None) -> dict[str, str]:
    found = {
        "sqlite": sqlean.sqlite_version,
        "sqlite_vec": sqlite_vec.__version__,
        "sqlean_py": version("sqlean.py"),
        "psycopg": version("psycopg"),
        "numpy": np.__version__,
    }
    if pg_url:
        with psycopg.connect(pg_url) as connection:
            found["postgres"] = connection.execute("SHOW server_version").fetchone()[0]
            found["pgvector"] = connection.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()[0]
            connection.execute("SELECT '[1]'::vector")  # loads pgvector, defining its settings
            for setting in ("fsync", "synchronous_commit", "hnsw.ef_search"):
                found[f"postgres {setting}"] = connection.execute(f"SHOW {setting}").fetchone()[0]
    return found


def main() -> None:
    parser = arguments(__doc__, repeats=None)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--paths", type=int, default=200)
    parser.add_argument("--reads", type=int, default=5000)
    parser.add_argument("--histories", type=int, default=1000)
    parser.add_argument("--real", type=int, default=10_000)
    parser.add_argument("--total", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    run_started, wall_started, load_start = time.perf_counter(), time.time(), os.getloadavg()
    home = Settings.from_environment().home
    gguf = default_embedding_model_path(home)
    notes: list[str] = []

    texts = sentences(args.real + args.queries)
    embed = LocalEmbed(home)
    embed(["warm-up"])
    started = time.perf_counter()
    vectors = np.array(embed(texts), dtype=np.float64)
    embed_s = time.perf_counter() - started
    embed.close()
    print(f"embedded {len(texts)} sentences in {embed_s:.1f} s", flush=True)
    real, queries = vectors[: args.real], vectors[args.real :]
    archive = Archive(texts[: args.real], real, args.total)
    queries32 = queries.astype(np.float32)
    sizes = sorted({args.real, args.total})
    truth, numpy_rows = {}, {}
    for size in sizes:
        truth[size] = exact_top(archive.matrix[:size].astype(np.float64), queries, K)
        numpy_rows[str(size)] = numpy_baseline(archive.matrix[:size], queries32, truth[size])
        print(f"  numpy {size:7d} entries {numpy_rows[str(size)]}", flush=True)
    search = (archive, queries32, sizes, truth)

    results: dict[str, Any] = {}
    disks = {}
    with tempfile.TemporaryDirectory(prefix="llmasos-bench-storage-") as folder:
        disks["sqlite"] = filesystem(Path(folder))
        plain = plain_sqlite(Path(folder) / "plain.sqlite3")
        results["sqlite"] = backend("sqlite", StorageConfig(Path(folder)), plain, args, search)
        try:
            with TemporaryPostgres() as pg:
                disks["postgres"] = filesystem(pg.directory)
                plain = plain_postgres(pg.create_database("plain_sql"))
                config = StorageConfig(Path(folder), database_url=pg.url)
                results["postgres"] = backend("postgres", config, plain, args, search)
                found_versions = versions(pg.url)
        except PostgresUnavailable as error:
            print(f"postgres: skipped ({error})", flush=True)
            notes.append(f"PostgreSQL skipped: {error}")
            found_versions = versions(None)

    search_ratio = {
        name: {
            size: round(
                row[size]["ms_per_query_median"] / numpy_rows[size]["ms_per_query_median"], 2
            )
            for size in row
        }
        for name, row in ((n, r["archival_search"]) for n, r in results.items())
    }
    notes += [
        f"File operations: fixed counts per operation, no repeats; ours and the plain SQL "
        f"alternate in {BLOCKS} blocks over the same inputs (ours first in even blocks), each on "
        "its own file/database of the same engine; ops/s is the count over the summed wall "
        "time, with the slowest and fastest block's rate beside it. The write order is "
        "round-robin over the paths, so a block of writes adds one version to each path. "
        "Ours does more per operation than the baseline by design: a write reads "
        "the head, computes sha256, inserts the version, moves the head row and updates the "
        "owner's usage row (two transactions); a read checks the sha256; a history returns "
        "full metadata. The baseline's write derives the version with max(version)+1 in the "
        "same INSERT.",
        f"Archival data: {args.real} sentences made from {len(TEMPLATES)} templates over small "
        "vocabularies (synthetic, not real user text), embedded with the default embedding model "
        f"in this run ({len(texts) / embed_s:.0f} texts/s). The entries beyond {args.real} are "
        f"NOT real embeddings: each is a real vector plus Gaussian noise (sigma {NOISE_SIGMA} "
        f"per component), renormalised (mean cosine to its source "
        f"{archive.source_cosine:.3f}); each real vector has {args.total // args.real - 1} such "
        f"copies. Embedding {args.total - args.real} more real texts would take "
        f"~{(args.total - args.real) * embed_s / len(texts) / 60:.0f} minutes at that rate. "
        "Recall and latency "
        "on real 100k-entry memories may differ.",
        f"Queries: {args.queries} held-out sentences from the same generator, embedded, never "
        "inserted. Recall@10 is against exact cosine kNN in numpy float64 over the same float32 "
        "vectors. The 100k size is the 10k entries plus the rest added to the same scope.",
        "All entries are in one agent's scope. PostgreSQL's HNSW index is one per vector table "
        "across all scopes (search filters by scope with iterative scans); with many agents "
        "sharing a shard, latency and recall there may differ from this single-scope case.",
        "numpy baseline: float32 matrix-vector product plus argpartition per query, the matrix "
        f"already in memory, BLAS threads: {blas_threads()} (a search in sqlite-vec or in a "
        "PostgreSQL backend runs on one core too); ours pays SQL, per-query transactions and "
        "fetching the entries' rows.",
        "The PostgreSQL search plan (EXPLAIN of MemoryStore.search's statement, after the "
        "loading, no ANALYZE run by the benchmark) is recorded per size.",
    ]
    for size, row in results.get("postgres", {}).get("archival_search", {}).items():
        if not row["uses_hnsw_index"]:
            notes.append(
                f"At {size} entries PostgreSQL's planner did not use the HNSW index (plan: "
                f"{row['plan'][:160]}...): that search was exact, its recall is not HNSW's."
            )
    run_s, wall_s = time.perf_counter() - run_started, time.time() - wall_started
    if abs(wall_s - run_s) > 0.05 * run_s:
        notes.append(
            f"The run took {run_s:.0f} s by the monotonic clock every figure is timed with, but "
            f"{wall_s:.0f} s by the wall clock: the machine (a VM) was probably paused meanwhile."
        )
    report = {
        **report_header("storage", __doc__.split("\n\n")[0], gguf),
        "settings": {
            "file_bytes": FILE_BYTES,
            "writes": args.writes,
            "paths": args.paths,
            "versions_per_path": args.writes // args.paths,
            "reads": args.reads,
            "histories": args.histories,
            "real_sentences": args.real,
            "total_entries": args.total,
            "noise_sigma": NOISE_SIGMA,
            "queries": args.queries,
            "k": K,
            "insert_batch": INSERT_BATCH,
            "sqlite": "WAL, synchronous=FULL (ours and the baseline)",
            "postgres": "TemporaryPostgres: fsync on, synchronous_commit on; ours in schema "
            "llmasos_shard_0 of one database, the baseline in another database on the server",
        },
        "versions": found_versions,
        "embedding": {"texts": len(texts), "wall_s": round(embed_s, 1)},
        "results": results,
        "file_ops_ours_over_plain_sql": {
            name: r["file_ops"]["ours_over_plain_sql"] for name, r in results.items()
        },
        "numpy_brute_force": numpy_rows,
        "search_ms_ours_over_numpy": search_ratio,
        "run_s": round(run_s, 1),
        "run_wall_clock_s": round(wall_s, 1),
        "data_filesystems": disks,
        "load_average_1_5_15_min": {
            "start": [round(x, 2) for x in load_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        "notes": notes,
    }
    write_report(args.out / "storage.json", report)
    plot(args.out / "storage.png", results, numpy_rows)
    print(f"run took {report['run_s']} s")


def grouped(
    ax: Any, groups: list[str], series: dict[str, list[float]], title: str, labels: str = ""
) -> None:
    """Grouped bars on `ax`; with `labels` (a format), each bar's value written on it."""
    width = 0.8 / len(series)
    for k, (label, values) in enumerate(series.items()):
        bars = ax.bar([i + width * k for i in range(len(groups))], values, width=width, label=label)
        if labels:
            ax.bar_label(bars, fmt=labels, fontsize=7)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))], groups)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(textwrap.fill(title, 48), fontsize=10)
    ax.legend(fontsize=8)


def plot(path: Path, results: dict, numpy_rows: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ops = ("write", "read", "history")
    groups = [f"{name}\n{op}" for name in results for op in ops]
    series = {
        label: [results[name]["file_ops"][key][op]["ops_per_s"] for name in results for op in ops]
        for label, key in (("ours (FileSystemView)", "ours"), ("plain SQL", "plain_sql"))
    }
    grouped(axes[0], groups, series, "File operations per second (log scale; higher is better)")
    axes[0].set_yscale("log")
    sizes = list(numpy_rows)
    shown = [f"{int(s):,} entries" for s in sizes]
    labels = {"sqlite": "sqlite-vec (exact)", "postgres": "pgvector HNSW"}
    series = {
        labels[name]: [r["archival_search"][s]["ms_per_query_median"] for s in sizes]
        for name, r in results.items()
    }
    series["numpy brute force"] = [numpy_rows[s]["ms_per_query_median"] for s in sizes]
    title = "Archival search, ms per query, median (log scale; lower is better)"
    grouped(axes[1], shown, series, title, labels="%.3g")
    axes[1].set_yscale("log")
    axes[1].set_ylim(top=4 * max(max(values) for values in series.values()))
    axes[1].legend(fontsize=8, loc="upper left", ncols=3)
    series = {
        labels[name]: [r["archival_search"][s]["recall_at_10"] for s in sizes]
        for name, r in results.items()
    }
    grouped(axes[2], shown, series, "Archival search recall@10 against exact cosine kNN", "%.3f")
    axes[2].set_ylim(0, 1.25)
    axes[2].legend(fontsize=8, loc="upper right", ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"-> {path}")


if __name__ == "__main__":
    main()
