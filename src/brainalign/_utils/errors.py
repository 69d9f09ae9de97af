"""The two kinds of error a user can fix, which the CLI prints as one message with exit code 2.

Any other exception is a bug: the CLI shows its traceback and exits 1. Both subclass ``ValueError`` so that
library callers that caught ``ValueError`` before these existed keep working. They live here, below every layer,
because bad data are found as low as the brain loaders; :mod:`brainalign.config` re-exports both.
"""
from __future__ import annotations

__all__ = ["ConfigError", "DataError"]


class ConfigError(ValueError):
    """A configuration problem, with the file and dotted field it concerns."""

    def __init__(self, message: str, *, file: str | None = None, field: str | None = None):
        self.file = file
        self.field = field
        where = ", ".join(p for p in (f"file {file}" if file else "", f"field '{field}'" if field else "") if p)
        super().__init__(f"{where}: {message}" if where else message)


class DataError(ValueError):
    """Input data that cannot be used as given (a missing run, mismatched shapes, a TR that disagrees...)."""
