"""Free disk space against what a run will write (``brainalign run``/``validate``, ``brainalign steer``).

Kept below every layer so that the encoding pipeline and the steering study share one rule and one message.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from brainalign._utils.errors import ConfigError

__all__ = ["DiskNeed", "check_disk", "gib"]


@dataclass
class DiskNeed:
    """Bytes a run will write below one folder (:func:`brainalign.pipeline.preflight.disk_needs`, the steering
    study's fine-tuned models)."""

    folder: Path
    bytes: int
    what: str
    moved_by: str  # the option or variable that puts it elsewhere


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def _existing_ancestor(path: Path) -> Path:
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_disk(needs: list[DiskNeed], force: bool = False, margin: float = 2.0,
               config_file: str | None = None) -> list[str]:
    """Compare the free space of every file system with what the run writes there (needs on one file system add up).

    Returns
    -------
    list of str
        Warnings: less than ``margin`` × the need is free (or, with ``force``, less than the need).

    Raises
    ------
    ConfigError
        Less space is free than the run needs and ``force`` is False: names the folder, the need and the free
        space (field: the option that moves the data elsewhere).
    """
    by_fs: dict[int, list[tuple[DiskNeed, Path]]] = {}
    for need in needs:
        if need.bytes <= 0:
            continue
        anchor = _existing_ancestor(need.folder)
        by_fs.setdefault(os.stat(anchor).st_dev, []).append((need, anchor))
    warnings_ = []
    for group in by_fs.values():
        total = sum(n.bytes for n, _ in group)
        free = shutil.disk_usage(group[0][1]).free
        parts = "; ".join(f"{n.folder}: {gib(n.bytes)} of {n.what}" for n, _ in group)
        moves = " / ".join(dict.fromkeys(n.moved_by for n, _ in group))
        if free < total:
            msg = (f"not enough disk space: the run writes about {gib(total)} ({parts}) but only {gib(free)} are "
                   f"free on the file system of {group[0][1]}; free space there, point {moves} to a larger disk, or "
                   "pass --force-disk to start anyway (e.g. when the features are already cached).")
            if not force:
                raise ConfigError(msg, file=config_file, field=group[0][0].moved_by)
            warnings_.append(msg)
        elif free < margin * total:
            warnings_.append(f"little disk space: the run writes about {gib(total)} ({parts}) and {gib(free)} are "
                             f"free on the file system of {group[0][1]}, less than {margin:g}× the estimate; the "
                             f"estimate is rough: point {moves} to a larger disk to be safe.")
    return warnings_
