"""Settings read from the environment, once, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path  # LLMASOS_HOME: models, storage and caches (default ~/.llmasos)

    @classmethod
    def from_environment(cls) -> Settings:
        return cls(home=Path(os.environ.get("LLMASOS_HOME", Path.home() / ".llmasos")).expanduser())
