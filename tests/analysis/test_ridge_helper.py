"""The analysis layer's single ridge entry point gives the same fit with either engine."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding.fit_predict import ridge_fit_predict
from brainalign.encoding.splits import leave_runs_out
from brainalign.testing.planted import planted_encoding


def test_engines_agree():
    sim = planted_encoding(n_runs=4, n_samples_per_run=60, n_voxels=30, seed=2)
    train = sim.runs < 3
    folds = leave_runs_out(sim.runs[train], 3)
    alphas = np.logspace(-1, 4, 8)
    p1, a1 = ridge_fit_predict(sim.X[train], sim.Y[train], sim.X[~train], alphas, folds, engine="brainalign")
    p2, a2 = ridge_fit_predict(sim.X[train], sim.Y[train], sim.X[~train], alphas, folds, engine="himalaya")
    np.testing.assert_allclose(a1, a2, rtol=1e-6)  # same alpha chosen (himalaya stores float32)
    np.testing.assert_allclose(p1, p2, atol=1e-4)
    with pytest.raises(ValueError, match="engine"):
        ridge_fit_predict(sim.X, sim.Y, sim.X, alphas, folds, engine="sklearn")
