"""Per-voxel scores between measured and predicted responses.

All functions take arrays of shape (n_samples, n_voxels), accumulate in
float64 and return one value per voxel. A voxel with zero variance in either
input gets NaN, never a division warning.
"""
from __future__ import annotations

import numpy as np

__all__ = ["pearson_r", "r2_score", "cosine_similarity"]


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
            "both must be (n_samples, n_voxels)."
        )
    if y_true.shape[0] < 2:
        raise ValueError(f"need at least 2 samples to score, got {y_true.shape[0]}.")
    return y_true, y_pred


def pearson_r(y_true, y_pred) -> np.ndarray:
    """Pearson correlation per voxel.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_voxels)

    Returns
    -------
    r : ndarray of shape (n_voxels,)
        NaN where either column is constant.
    """
    a, b = _pair(y_true, y_pred)
    a = a - a.mean(0)
    b = b - b.mean(0)
    num = (a * b).sum(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    r[den == 0] = np.nan
    return r


def r2_score(y_true, y_pred) -> np.ndarray:
    """Coefficient of determination per voxel, 1 - SS_res / SS_tot.

    Negative when the prediction is worse than the column mean; NaN for a
    constant ``y_true`` column.
    """
    a, b = _pair(y_true, y_pred)
    ss_res = ((a - b) ** 2).sum(0)
    ss_tot = ((a - a.mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    r2[ss_tot == 0] = np.nan
    return r2


def cosine_similarity(y_true, y_pred) -> np.ndarray:
    """Cosine similarity per voxel (uncentred correlation)."""
    a, b = _pair(y_true, y_pred)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a * b).sum(0) / den
    c[den == 0] = np.nan
    return c
