"""Per-voxel scores of the encoding estimators (``score`` methods), with himalaya's conventions."""
from __future__ import annotations

import numpy as np

__all__ = ["r2_score"]


def r2_score(Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
    """Coefficient of determination per voxel, ``1 - SS_res / SS_tot``, accumulated in float64.

    As ``himalaya.scoring.r2_score``, a voxel whose ``Y`` is constant scores
    0 (``brainalign.analysis.metrics.r2_score``, for reported results, gives
    NaN there instead).

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_voxels)
        Measured responses.
    Y_hat : ndarray of shape (n_samples, n_voxels)
        Predictions.

    Returns
    -------
    r2 : ndarray of shape (n_voxels,), float64
    """
    err = ((Y - Y_hat) ** 2).sum(0, dtype=np.float64)
    var = ((Y - Y.mean(0, dtype=np.float64)) ** 2).sum(0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - err / var
    r2[var == 0] = 0.0  # himalaya's convention
    return r2
