"""Memory preflight for the ridge fit: estimate peak bytes from shapes, fail early.

The estimate counts the arrays that :func:`brainalign.encoding.ridge.solve_ridge_cv`
allocates (see that module for their shapes); it is an upper-bound style sum,
not a measurement. The input ``X`` and ``Y`` are not counted (they already
exist, or ``Y`` is read from disk chunk by chunk).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MemoryEstimate", "estimate_fit_bytes", "available_bytes", "check_memory", "MemoryPreflightError"]


class MemoryPreflightError(MemoryError):
    """The fit would need more memory than is available."""


@dataclass
class MemoryEstimate:
    """Bytes the fit will allocate.

    Attributes
    ----------
    fixed : int
        Independent of the chunk size: decompositions, fold operators, outputs.
    per_voxel_in_chunk : int
        Bytes per voxel of one chunk being processed (times the chunks in flight).
    chunk_voxels : int
    chunks_in_flight : int
    """

    fixed: int
    per_voxel_in_chunk: int
    chunk_voxels: int
    chunks_in_flight: int = 1

    @property
    def peak(self) -> int:
        return int(self.fixed + self.per_voxel_in_chunk * self.chunk_voxels * self.chunks_in_flight)

    def chunk_that_fits(self, budget: int) -> int:
        """Largest chunk size (>= 0) whose peak stays within ``budget`` bytes."""
        room = budget - self.fixed
        if room <= 0:
            return 0
        return int(room // (self.per_voxel_in_chunk * self.chunks_in_flight))


def estimate_fit_bytes(
    n_samples: int,
    n_features: int,
    n_voxels: int,
    n_alphas: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
    chunk_voxels: int,
    chunks_in_flight: int = 1,
) -> MemoryEstimate:
    """Estimate the memory a cross-validated ridge fit needs.

    Parameters
    ----------
    n_samples, n_features, n_voxels, n_alphas : int
    folds : list of (train, val) index arrays
    chunk_voxels : int
    chunks_in_flight : int
        Chunks processed at the same time (dask workers hold one each, plus
        chunks in transit).

    Returns
    -------
    MemoryEstimate
    """
    n, p = n_samples, n_features
    r = min(n, p)
    m = min(n, p)
    # decomposition of one design (transient): float64 copy, Gram, eigenvectors, U, V
    decomp = 8 * (n * p + 2 * m * m + n * r + p * r)
    # fold operators kept for the whole fit: Ut (float32) + stacked M (float32),
    # plus the float64 M while one is built
    ops = 0
    build = 0
    for train, val in folds:
        rt = min(len(train), p)
        ops += 4 * (rt * len(train) + n_alphas * len(val) * rt)
        ops += 8 * (rt * len(train) + len(val) * rt + n_alphas * rt)  # float64 copies for near-tie re-scoring
        build = max(build, 8 * n_alphas * len(val) * rt)
    full = 4 * r * n + 12 * p * r
    outputs = 4 * p * n_voxels + 8 * n_alphas * n_voxels + 40 * n_voxels
    fixed = decomp + ops + build + full + outputs
    n_val = max((len(v) for _, v in folds), default=n)
    n_tr = max((len(t) for t, _ in folds), default=n)
    per_voxel = (
        16 * n  # chunk as read (up to float64) + float32 copy + centred copy (fit_intercept)
        + 4 * n_tr + 8 * n_val  # training rows, validation rows (+ centred copy)
        + 16 * r  # B, filter factors (float64 + float32)
        + 8 * n_alphas * n_val  # predictions of all alphas (+ the low-rank partial predictions)
        + 8 * n_alphas * (len(folds) + 2)  # per-fold and mean scores
        + 8 * p  # coef chunk (+ float64 copy for the intercept)
    )
    return MemoryEstimate(int(fixed), int(per_voxel), int(chunk_voxels), int(chunks_in_flight))


def available_bytes() -> int:
    """Memory available to new allocations (``MemAvailable``), in bytes."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is a dask dependency
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return int(2**62)  # pragma: no cover


def _fmt(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB" if b < 2**30 else f"{b / 2**30:,.2f} GiB"


def check_memory(estimate: MemoryEstimate, budget: int | None = None) -> None:
    """Raise :class:`MemoryPreflightError` if the estimated peak exceeds ``budget``.

    Parameters
    ----------
    estimate : MemoryEstimate
    budget : int or None
        Bytes allowed; the currently available memory when None.
    """
    budget = available_bytes() if budget is None else int(budget)
    if estimate.peak <= budget:
        return
    fit = estimate.chunk_that_fits(budget)
    if fit >= 1:
        raise MemoryPreflightError(
            f"The ridge fit needs about {_fmt(estimate.peak)} with chunk_voxels={estimate.chunk_voxels} "
            f"but only {_fmt(budget)} is available; set chunk_voxels={fit} or less "
            f"(fixed part {_fmt(estimate.fixed)}, {_fmt(estimate.per_voxel_in_chunk)} per 1 voxel per chunk "
            f"x {estimate.chunks_in_flight} chunk(s) in flight)."
        )
    raise MemoryPreflightError(
        f"The ridge fit needs about {_fmt(estimate.fixed)} before any voxel chunk (decompositions, "
        f"fold operators, outputs) but only {_fmt(budget)} is available; no chunk_voxels fits. "
        "Reduce the number of features (e.g. PCA), of alphas or of folds, or fit fewer voxels at a time."
    )
