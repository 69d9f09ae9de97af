"""The one place the pipeline builds a ridge estimator.

Until brainalign's own ``RidgeCV`` lands, this uses himalaya's (same interface:
``fit(X, Y)``, ``predict``, ``best_alphas_``, ``coef_`` of shape
(n_features, n_voxels)).
"""
from __future__ import annotations

import numpy as np

__all__ = ["make_ridge"]


def make_ridge(alphas, cv):
    """Per-voxel-alpha ridge with cross-validation folds ``cv`` (list of (train, test))."""
    from himalaya.ridge import RidgeCV

    return RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), cv=cv, solver_params=dict(warn=False))
