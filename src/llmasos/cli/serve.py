"""`llmasos serve`: the HTTP server, one kernel per loaded model."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmasos.cli.common import Model, announce, fail
from llmasos.cli.tls import serve_http, tls_files
from llmasos.errors import LLMasOSError

if TYPE_CHECKING:
    from llmasos.server.launch import ServeConfig

Host = Annotated[str, typer.Option(help="Interface to listen on.")]


class LogFormatName(StrEnum):
    text = "text"
    json = "json"


LogFormat = Annotated[
    LogFormatName,
    typer.Option(
        envvar="LLMASOS_LOG_FORMAT",
        help="text: warnings and errors; json: one JSON object per line on stderr, access "
        "lines with request ids included.",
    ),
]
Port = Annotated[int, typer.Option(help="TCP port.")]
Policy = Annotated[
    str, typer.Option(help="fair (owners share the engine), fcfs, sjf, rr or priority.")
]
ApiKeys = Annotated[
    list[str] | None,
    typer.Option(
        "--api-key",
        help="Require this bearer key (repeatable; also $LLMASOS_API_KEYS, comma-separated).",
    ),
]
AdminKey = Annotated[
    str | None,
    typer.Option(
        "--admin-key",
        envvar="LLMASOS_ADMIN_KEY",
        help="The key for administrative routes (model import, delete, unload; keys, audit); "
        "admin-role keys (llmasos keys create --role admin) open them too.",
    ),
]
ImportDirs = Annotated[
    list[Path] | None,
    typer.Option(
        "--import-dir", help="A directory that path imports over HTTP may read from (repeatable)."
    ),
]
MaxRunning = Annotated[
    int | None,
    typer.Option(help="Most processes per engine step (default: 16, at most the slots)."),
]
NumSlots = Annotated[int, typer.Option(help="Sequences resident in the KV cache.")]
ContextLength = Annotated[int, typer.Option(help="Most tokens per process.")]
MaxBatchTokens = Annotated[int, typer.Option(help="Token budget per engine step.")]
Threads = Annotated[int | None, typer.Option(help="CPU threads (default: all).")]
KvCacheType = Annotated[
    str,
    typer.Option(
        help="K/V cache type: q8_0 (exact batching) or f16 (faster long prefill, twice the "
        "memory, not exact)."
    ),
]
PageSize = Annotated[int, typer.Option(help="Tokens per KV page.")]
SwapBytes = Annotated[int, typer.Option(help="Host RAM for swapped KV; then disk.")]
PagesPerProcess = Annotated[int | None, typer.Option(help="KV page quota of one process.")]
PagesPerOwner = Annotated[
    int | None, typer.Option(help="KV page quota of one API key's live processes.")
]
MemoryBudget = Annotated[
    str | None, typer.Option(help="Memory for loaded models, e.g. 8GiB (default: half the RAM).")
]
Placement = Annotated[
    str, typer.Option(help="Device fit policy: first-fit, best-fit or worst-fit.")
]
KeepAlive = Annotated[
    float, typer.Option(help="Seconds an idle model other than --model stays loaded.")
]
RequestsPerMinute = Annotated[
    int | None, typer.Option(help="Per key; past it, 429 with Retry-After.")
]
TokensPerMinute = Annotated[
    int | None, typer.Option(help="max_tokens per key and minute; past it, 429.")
]
TlsCert = Annotated[
    Path | None,
    typer.Option(
        "--tls-cert",
        envvar="LLMASOS_TLS_CERT",
        help="Serve HTTPS with this PEM certificate (chain); needs --tls-key.",
    ),
]
JobCpuShare = Annotated[
    float,
    typer.Option(help="CPU share (0-1) a training job keeps while interactive requests run."),
]
TlsKey = Annotated[
    Path | None,
    typer.Option(
        "--tls-key",
        envvar="LLMASOS_TLS_KEY",
        help="The unencrypted PEM private key of --tls-cert.",
    ),
]


Cluster = Annotated[
    str | None,
    typer.Option(
        help="Serve from engine replicas on a Ray cluster: auto (start a local one), "
        "ray://HOST:PORT (Ray Client) or HOST:PORT (a cluster's GCS address)."
    ),
]
Replicas = Annotated[int | None, typer.Option(help="Replicas at start (default: --min-replicas).")]
MinReplicas = Annotated[int, typer.Option(help="Fewest replicas the scaler keeps.")]
MaxReplicas = Annotated[int | None, typer.Option(help="Most replicas (default: the replicas).")]
ScaleAlpha = Annotated[float, typer.Option(help="Scaler step: R + alpha (R_demand - R).")]
ScaleInterval = Annotated[float, typer.Option(help="Seconds between scaler decisions.")]
Routing = Annotated[str, typer.Option(help="cache-aware (longest cached prefix) or round-robin.")]
Role = Annotated[
    str,
    typer.Option(
        help="With --cluster: all (the pool of replicas, its scaler and a front) or front (a "
        "front for the pool --pool that another llmasos serve --cluster runs)."
    ),
]
PoolName = Annotated[str, typer.Option(help="With --cluster: the pool's name on the Ray cluster.")]
GpusPerReplica = Annotated[
    float | None,
    typer.Option(
        help="GPUs each replica takes (a fraction below 1 shares a GPU and that share of its "
        "memory). Default: 1 where the cluster has GPUs, else 0."
    ),
]


def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    model: Model = None,
    policy: Policy = "fair",
    api_key: ApiKeys = None,
    admin_key: AdminKey = None,
    import_dir: ImportDirs = None,
    max_running: MaxRunning = None,
    num_slots: NumSlots = 16,
    context_length: ContextLength = 4096,
    max_batch_tokens: MaxBatchTokens = 512,
    threads: Threads = None,
    kv_cache_type: KvCacheType = "q8_0",
    page_size: PageSize = 16,
    swap_bytes: SwapBytes = 2 * 1024**3,
    max_pages_per_process: PagesPerProcess = None,
    max_pages_per_owner: PagesPerOwner = None,
    memory_budget: MemoryBudget = None,
    placement: Placement = "first-fit",
    keep_alive: KeepAlive = 300.0,
    requests_per_minute: RequestsPerMinute = None,
    tokens_per_minute: TokensPerMinute = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    job_cpu_share: JobCpuShare = 0.0,
    cluster: Cluster = None,
    replicas: Replicas = None,
    min_replicas: MinReplicas = 1,
    max_replicas: MaxReplicas = None,
    scale_alpha: ScaleAlpha = 0.5,
    scale_interval: ScaleInterval = 10.0,
    routing: Routing = "cache-aware",
    gpus_per_replica: GpusPerReplica = None,
    role: Role = "all",
    pool: PoolName = "llmasos",
    log_format: LogFormat = LogFormatName.text,
) -> None:
    """Serve the OS over HTTP: OpenAI-compatible and native routes; one kernel per loaded
    model, --model loaded at start and kept, others loaded on demand. With --cluster, engine
    replicas on Ray serve behind a routing front."""
    from llmasos.server.launch import ServeConfig

    _observe(log_format)
    config = ServeConfig(
        model, policy, tuple(api_key or ()), admin_key, tuple(import_dir or ()), max_running,
        num_slots, context_length, max_batch_tokens, threads, kv_cache_type, page_size,
        swap_bytes, max_pages_per_process, max_pages_per_owner, memory_budget, placement,
        keep_alive, requests_per_minute, tokens_per_minute, job_cpu_share,
    )  # fmt: skip
    try:
        tls = tls_files(tls_cert, tls_key)  # checked before the model loads
        config.check()
    except LLMasOSError as error:
        fail(str(error))
    if cluster is not None:
        from llmasos.cli.cluster import ClusterPlan, serve_cluster

        scaling = (replicas, min_replicas, max_replicas, scale_alpha, scale_interval)
        plan = ClusterPlan(cluster, scaling, routing, gpus_per_replica, role, pool)
        serve_cluster(plan, config, host, port, tls)
        return
    _serve_one(config, host, port, tls)


def _observe(log_format: LogFormatName) -> None:
    """Logs in `log_format`, and traces exported where OTEL_EXPORTER_OTLP_ENDPOINT says."""
    from llmasos.server.log_format import configure_logging
    from llmasos.server.tracing import configure_tracing

    configure_logging(log_format.value)
    try:
        configure_tracing()
    except LLMasOSError as error:
        fail(str(error))


def _serve_one(config: ServeConfig, host: str, port: int, tls: tuple[Path, Path] | None) -> None:
    from llmasos.server.launch import build_app, build_models

    try:
        models = build_models(config)
        announce(f"loading {models.default_model}...")
        models.load(pin=True)  # the model served from the start stays loaded
    except LLMasOSError as error:
        fail(str(error))
    app = build_app(models, config)
    keys = len(app.state.access.api_keys)
    auth = f"{keys} static API key(s)" if keys else "no static API key"
    admin = "admin key set" if config.admin_key else "admin routes for admin-role keys only"
    details = f"(policy {models.kernel_config.policy}, {auth}, {admin})"
    serve_http(
        app,
        host,
        port,
        tls,
        lambda url: f"LLMasOS serving {models.default_model} on {url} {details}",
    )
