"""What `llmasos serve` starts, as plain values: the model manager and the app of one server.

The CLI fills a ServeConfig from its flags; a cluster replica (llmasos.cluster) gets the same
ServeConfig and builds the same server inside its Ray actor, so a replica serves exactly what a
single `llmasos serve` would.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from llmasos.errors import InvalidRequestError
from llmasos.jobs.throttle import check_share
from llmasos.kernel.config import KernelConfig
from llmasos.models.default import DEFAULT_MODEL
from llmasos.models.import_policy import ImportPolicy
from llmasos.models.placement import FitPolicy
from llmasos.runtime.factory import EngineOptions, model_manager
from llmasos.runtime.manager import ModelManager
from llmasos.security.crypto import parse_master_key
from llmasos.server.app import Access, create_app
from llmasos.server.cluster_link import ClusterLink
from llmasos.server.rate_limits import BucketStore, RateLimits
from llmasos.settings import Settings


@dataclass(frozen=True)
class ServeConfig:
    """The settings of one server (the flags of `llmasos serve`)."""

    model: str | None = None
    policy: str = "fair"
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    admin_key: str | None = field(default=None, repr=False)
    import_dirs: tuple[Path, ...] = ()
    max_running: int | None = None
    num_slots: int = 16
    context_length: int = 4096
    max_batch_tokens: int = 512
    threads: int | None = None
    kv_cache_type: str = "q8_0"
    page_size: int = 16
    swap_bytes: int = 2 * 1024**3
    max_pages_per_process: int | None = None
    max_pages_per_owner: int | None = None
    memory_budget: str | None = None
    placement: str = "first-fit"
    keep_alive: float = 300.0
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    job_cpu_share: float = 0.0
    first_pid: int = 1  # a cluster replica's pids start at its own range
    cluster_front: str | None = None  # a cluster replica: its front, where batch lines go
    cluster_token: str | None = field(default=None, repr=False)  # shared by front and replicas

    def rate_limits(self) -> RateLimits:
        return RateLimits(self.requests_per_minute, self.tokens_per_minute)

    def check(self) -> None:
        """InvalidRequestError naming the flag at fault, before anything loads."""
        self.rate_limits()
        check_share(self.job_cpu_share)
        parse_bytes("memory_budget", self.memory_budget)
        FitPolicy.parse(self.placement)


def build_models(config: ServeConfig) -> ModelManager:
    """The model manager of a server with `config` (nothing loaded yet)."""
    settings = Settings.from_environment()
    home = settings.home
    master_key = parse_master_key(settings.master_key) if settings.master_key else None
    kernel = KernelConfig(
        policy=config.policy,
        max_running=config.max_running or min(16, config.num_slots, config.max_batch_tokens),
        page_size=config.page_size,
        swap_bytes=config.swap_bytes,
        swap_directory=home / "swap",
        swap_key=master_key,
        max_pages_per_process=config.max_pages_per_process,
        max_pages_per_owner=config.max_pages_per_owner,
    )
    options = EngineOptions(
        config.num_slots,
        config.context_length,
        config.max_batch_tokens,
        config.threads,
        config.kv_cache_type,
    )
    models = model_manager(
        kernel,
        options,
        home=home,
        memory_budget_bytes=parse_bytes("memory_budget", config.memory_budget),
        placement=FitPolicy.parse(config.placement),
        keep_alive_s=config.keep_alive,
        default_model=config.model or DEFAULT_MODEL,
    )
    models.pids = itertools.count(config.first_pid)
    return models


def build_app(
    models: ModelManager, config: ServeConfig, rate_buckets: BucketStore | None = None
) -> FastAPI:
    """The app serving `models`; static keys from the config and $LLMASOS_API_KEYS."""
    keys = [*config.api_keys, *filter(None, os.environ.get("LLMASOS_API_KEYS", "").split(","))]
    access = Access(api_keys=tuple(keys), admin_key=config.admin_key)
    imports = ImportPolicy.for_server(tuple(config.import_dirs))
    link = None
    if config.cluster_front and config.cluster_token:
        link = ClusterLink(config.cluster_front, config.cluster_token, rate_buckets)
    return create_app(
        models,
        access=access,
        imports=imports,
        rate_limits=config.rate_limits(),
        job_cpu_share=config.job_cpu_share,
        cluster=link,
    )


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
