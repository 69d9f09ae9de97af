"""Fault injection for the crash tests (``$BRAINALIGN_STALL_AT``), shared by the feature cache and the checkpoints."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

__all__ = ["stall_point"]


def stall_point(name: str) -> None:
    """Fault injection for crash tests: when ``$BRAINALIGN_STALL_AT`` is ``name:n``, the n-th call writes
    ``$BRAINALIGN_STALL_MARKER`` and blocks, so that a test can ``kill -9`` the process at a known place."""
    spec = os.environ.get("BRAINALIGN_STALL_AT")
    if not spec or not spec.startswith(name + ":"):
        return
    counts = stall_point.__dict__.setdefault("counts", {})
    counts[name] = counts.get(name, 0) + 1
    if counts[name] == int(spec.rsplit(":", 1)[1]):
        marker = os.environ.get("BRAINALIGN_STALL_MARKER")
        if marker:
            Path(marker).write_text(str(os.getpid()))
        print(f"stalled at {spec}", file=sys.stderr, flush=True)
        while True:
            time.sleep(1)
