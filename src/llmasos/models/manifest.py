"""Model names (NAME[:TAG]) and manifests: what a name in the repository stands for."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

from llmasos.errors import InvalidRequestError, ModelFileError
from llmasos.models.gguf_info import GGUFInfo

DEFAULT_TAG = "latest"
_PART = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Manifest:
    """What a model name stands for."""

    name: str  # name:tag
    digest: str  # sha256:<hex> of the blob
    format: str
    architecture: str
    parameters: int
    quantization: str
    context_length: int
    chat_template: str | None
    license: str | None
    size_bytes: int
    kv_bytes_per_token: int
    source: str
    imported_at: str
    base: str | None = None  # for a LoRA adapter: the model (name:tag) it runs over
    owner: str | None = None  # a private model (a user's training job's): only its owner's

    @classmethod
    def of(cls, name: str, digest: str, info: GGUFInfo, source: str) -> Manifest:
        fields = asdict(info)
        fields.pop("name")  # the GGUF's own display name; the manifest is keyed by ours
        if fields.pop("is_adapter"):
            raise ModelFileError(
                source,
                "is a LoRA adapter, not a model; import it over its base model "
                "(llmasos models import PATH --base MODEL)",
            )
        return cls(
            name=name, digest=digest, format="gguf", source=source, imported_at=now_utc(), **fields
        )

    @classmethod
    def of_adapter(
        cls, name: str, digest: str, info: GGUFInfo, source: str, base: Manifest
    ) -> Manifest:
        """An adapter's manifest: what runs is the base with the adapter applied."""
        if not info.is_adapter:
            raise ModelFileError(source, "is not a LoRA adapter (its general.type is not adapter)")
        if info.architecture != base.architecture:
            raise ModelFileError(
                source,
                f"is an adapter for {info.architecture} models; {base.name} is {base.architecture}",
            )
        return cls(
            name=name,
            digest=digest,
            format="gguf",
            architecture=base.architecture,
            parameters=base.parameters + info.parameters,
            quantization=base.quantization,
            context_length=base.context_length,
            chat_template=base.chat_template,
            license=base.license,
            size_bytes=base.size_bytes + info.size_bytes,
            kv_bytes_per_token=base.kv_bytes_per_token,
            source=source,
            imported_at=now_utc(),
            base=base.name,
        )


def parse_name(name: object) -> tuple[str, str]:
    """("name", "tag") from "name[:tag]"; InvalidRequestError naming the rule otherwise."""
    if not isinstance(name, str):
        raise InvalidRequestError("name", f"must be a string, got {type(name).__name__}")
    base, colon, tag = name.partition(":")
    tag = tag or ("" if colon else DEFAULT_TAG)
    for part in (base, tag):
        if not _PART.match(part):
            raise InvalidRequestError(
                "name",
                f"{name!r} is not NAME[:TAG] with each part 1-64 characters of a-z, 0-9, '.', "
                "'_' or '-', starting with a letter or digit",
            )
    return base, tag


def full_name(name: str) -> str:
    base, tag = parse_name(name)
    return f"{base}:{tag}"


def now_utc() -> str:  # as manifests write it
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
