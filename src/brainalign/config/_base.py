"""What every config section shares: the strict base model and the paths a config names."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel", "BUILTIN_PREFIX", "resolve_path"]

BUILTIN_PREFIX = "builtin:"


class StrictModel(BaseModel):
    """The one base of every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False)


def resolve_path(path: str, base: Path | None = None) -> Path:
    """Resolve a config path: ``builtin:<rel>`` → package data, relative → next to the config."""
    if path.startswith(BUILTIN_PREFIX):
        rel = path[len(BUILTIN_PREFIX) :]
        return Path(str(resources.files("brainalign") / "data" / rel))
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = base / p
    return p
