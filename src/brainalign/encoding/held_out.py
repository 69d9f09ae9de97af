"""Held-out predictions of feature spaces, in memory or memory-mapped on disk when they are large.

Each space's held-out predictions are an (n_rows, n_voxels) float32 array: at study scale the largest arrays of a
run (the movies study: 13,021 rows × 81,924 vertices ≈ 4 GiB per space, 1,763 spaces). The pipeline scores each
space as soon as its folds are fitted and keeps one such array at a time
(:func:`brainalign.pipeline.runner.cross_validate_statistics`); :func:`brainalign.pipeline.runner.cross_validate`
keeps all of them for callers that ask. Past ``encoding.predictions_in_memory_gib`` the arrays are ``.npy`` memory
maps in a temporary folder (``TMPDIR``; removed by :meth:`HeldOut.close`). The numbers are identical either way.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["HeldOut"]


class HeldOut(dict):
    """``space name → ndarray (n_rows, n_voxels)`` float32, NaN where a row was never held out.

    Parameters
    ----------
    names : sequence of str
    shape : (n_rows, n_voxels)
    limit_gib : float
        Above this total size the arrays are memory-mapped files instead of RAM.
    folder : path, optional
        Where the memory maps go (default: a new temporary folder).
    """

    def __init__(self, names, shape: tuple[int, int], limit_gib: float, folder: str | Path | None = None):
        super().__init__()
        total = len(names) * int(np.prod(shape)) * 4
        self.on_disk = total > limit_gib * 2**30
        self.folder = None
        if self.on_disk:
            self.folder = Path(tempfile.mkdtemp(prefix="brainalign-heldout-", dir=folder))
        for i, name in enumerate(names):
            if self.on_disk:
                arr = np.lib.format.open_memmap(self.folder / f"space{i:05d}.npy", mode="w+", dtype=np.float32,
                                                shape=tuple(shape))
                arr[:] = np.nan
            else:
                arr = np.full(shape, np.nan, dtype=np.float32)
            self[name] = arr

    def close(self) -> None:
        """Drop the arrays and delete the memory-mapped files (if any)."""
        self.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __del__(self):  # a run that raised still removes its files
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
