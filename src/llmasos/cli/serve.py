"""`llmasos serve`: the HTTP server, one kernel per loaded model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmasos.cli.common import Model, errors, fail
from llmasos.cli.tls import tls_files
from llmasos.errors import InvalidRequestError, LLMasOSError

if TYPE_CHECKING:
    from llmasos.runtime.manager import ModelManager
    from llmasos.server.rate_limits import RateLimits

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
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
) -> None:
    """Serve the OS over HTTP: OpenAI-compatible and native routes; one kernel per loaded
    model, --model loaded at start and kept, others loaded on demand."""
    from llmasos.jobs.throttle import check_share
    from llmasos.kernel.config import KernelConfig
    from llmasos.models.default import DEFAULT_MODEL
    from llmasos.models.placement import FitPolicy
    from llmasos.runtime.factory import EngineOptions, model_manager
    from llmasos.security.crypto import parse_master_key
    from llmasos.server.rate_limits import RateLimits
    from llmasos.settings import Settings

    settings = Settings.from_environment()
    home = settings.home
    try:
        tls = tls_files(tls_cert, tls_key)  # checked before the model loads
        rates = RateLimits(requests_per_minute, tokens_per_minute)
        check_share(job_cpu_share)
        master_key = parse_master_key(settings.master_key) if settings.master_key else None
        config = KernelConfig(
            policy=policy,
            max_running=max_running or min(16, num_slots, max_batch_tokens),
            page_size=page_size,
            swap_bytes=swap_bytes,
            swap_directory=home / "swap",
            swap_key=master_key,
            max_pages_per_process=max_pages_per_process,
            max_pages_per_owner=max_pages_per_owner,
        )
        options = EngineOptions(num_slots, context_length, max_batch_tokens, threads, kv_cache_type)
        models = model_manager(
            config,
            options,
            home=home,
            memory_budget_bytes=parse_bytes("memory_budget", memory_budget),
            placement=FitPolicy.parse(placement),
            keep_alive_s=keep_alive,
            default_model=model or DEFAULT_MODEL,
        )
        errors.print(f"loading {models.default_model}...")
        models.load(pin=True)  # the model served from the start stays loaded
    except LLMasOSError as error:
        fail(str(error))
    _run(models, host, port, api_key or [], admin_key, import_dir or [], tls, rates, job_cpu_share)


def _run(
    models: ModelManager,
    host: str,
    port: int,
    api_keys: list[str],
    admin_key: str | None,
    import_dirs: list[Path],
    tls: tuple[Path, Path] | None,
    rates: RateLimits,
    job_cpu_share: float,
) -> None:
    import uvicorn

    from llmasos.models.import_policy import ImportPolicy
    from llmasos.server.app import Access, create_app

    keys = [*api_keys, *filter(None, os.environ.get("LLMASOS_API_KEYS", "").split(","))]
    access = Access(api_keys=tuple(keys), admin_key=admin_key)
    auth = f"{len(keys)} static API key(s)" if keys else "no static API key"
    admin = "admin key set" if admin_key else "admin routes for admin-role keys only"
    policy = models.kernel_config.policy
    scheme = "https" if tls else "http"
    errors.print(
        f"LLMasOS serving {models.default_model} on {scheme}://{host}:{port} "
        f"(policy {policy}, {auth}, {admin})"
    )
    imports = ImportPolicy.for_server(tuple(import_dirs))
    app = create_app(
        models, access=access, imports=imports, rate_limits=rates, job_cpu_share=job_cpu_share
    )
    cert, key = tls or (None, None)
    uvicorn.run(app, host=host, port=port, log_level="warning", ssl_certfile=cert, ssl_keyfile=key)


_UNITS = {
    "": 1,
    "k": 1e3,
    "kb": 1e3,
    "kib": 2**10,
    "m": 1e6,
    "mb": 1e6,
    "mib": 2**20,
    "g": 1e9,
    "gb": 1e9,
    "gib": 2**30,
    "t": 1e12,
    "tb": 1e12,
    "tib": 2**40,
}


def parse_bytes(field: str, text: str | None) -> int | None:
    """ "8GiB", "512MB", "1000000" -> bytes; InvalidRequestError naming `field` otherwise."""
    if text is None:
        return None
    number = text.strip().lower()
    digits = number.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = number[len(digits) :].strip()
    try:
        value = float(digits) * _UNITS[unit]
    except (ValueError, KeyError):
        raise InvalidRequestError(field, f"{text!r} is not a size like 8GiB or 512MB") from None
    if value < 1:
        raise InvalidRequestError(field, f"must be at least 1 byte, got {text!r}")
    return int(value)
