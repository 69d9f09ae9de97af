"""The design of one outer fold is fitted on its training rows only, PCA included.

Changing only the held-out rows (shifted, scaled, permuted) must leave the training design unchanged, and the
held-out rows must go through the map fitted on the training rows (checked against scikit-learn's PCA fitted by
hand on those rows).
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA

from brainalign import pipeline


def _data(seed=0, n_runs=4, n_per_run=30, n_features=12):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n_runs * n_per_run, 3))
    X = (latent @ rng.standard_normal((3, n_features)) + 0.3 * rng.standard_normal((n_runs * n_per_run, n_features)))
    runs = np.repeat(np.arange(n_runs), n_per_run)
    return X.astype(np.float32), runs


@pytest.mark.parametrize("change", ["shift", "scale", "permute"])
@pytest.mark.parametrize("k", [None, 3])
def test_held_out_rows_do_not_touch_the_training_design(change, k):
    X, runs = _data()
    train, test = np.flatnonzero(runs != 3), np.flatnonzero(runs == 3)
    Xtr, Xte = pipeline.prepare_design(X, runs, train, test, [0, 1, 2], k)
    X2 = X.copy()
    rng = np.random.default_rng(1)
    if change == "shift":
        X2[test] += 5.0 * rng.standard_normal(X.shape[1]).astype(np.float32)
    elif change == "scale":
        X2[test] *= 7.0
    else:
        X2[test] = X2[rng.permutation(test)]
    Xtr2, Xte2 = pipeline.prepare_design(X2, runs, train, test, [0, 1, 2], k)
    np.testing.assert_array_equal(Xtr, Xtr2)
    assert not np.allclose(Xte, Xte2)  # the change did reach the held-out design
    assert Xtr.shape[1] == 3 * (k or X.shape[1])


def test_held_out_rows_are_projected_by_the_training_pca():
    X, runs = _data(seed=2)
    train, test = np.flatnonzero(runs != 0), np.flatnonzero(runs == 0)
    X[test] += 3.0  # a held-out run far from the training mean: leakage would move the projection
    k = 4
    Xtr, Xte = pipeline.prepare_design(X, runs, train, test, [0], k)
    mu, sd = X[train].mean(0), X[train].std(0)
    Z = (X - mu) / sd
    pca = PCA(k).fit(Z[train])
    ref_tr, ref_te = pca.transform(Z[train]), pca.transform(Z[test])
    # components are defined up to sign: align each column by its training correlation
    signs = np.sign(np.sum(ref_tr * Xtr[:, :k], 0))
    np.testing.assert_allclose(Xtr[:, :k], ref_tr * signs, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(Xte[:, :k], ref_te * signs, rtol=1e-3, atol=1e-3)
