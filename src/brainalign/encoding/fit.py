"""The one place the pipeline builds a ridge estimator."""
from __future__ import annotations

import numpy as np

from brainalign.encoding.estimators import RidgeCV

__all__ = ["make_ridge"]


def make_ridge(alphas, cv) -> RidgeCV:
    """Per-voxel-alpha ridge (no intercept: features and responses are centred) with folds ``cv``."""
    return RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), cv=cv, fit_intercept=False, local_alpha=True)
