"""Variance partitioning fits every subset model on the training runs only.

Changing only the held-out run (features and voxels shifted, scaled or permuted) must leave everything fitted on
training data unchanged: the z-scored training features, the centred training targets that reach the ridge solver,
and the chosen alphas. A spy on the solver call records exactly what it was given.
"""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.analysis import partition

REAL_RIDGE, REAL_BANDED = partition.ridge_fit_predict, partition.banded_ridge_fit_predict


def _data(seed=0, n_runs=4, per_run=40):
    rng = np.random.default_rng(seed)
    n = n_runs * per_run
    A = rng.standard_normal((n, 4))
    B = 0.5 * A[:, :2] @ rng.standard_normal((2, 3)) + rng.standard_normal((n, 3))
    Y = A @ rng.standard_normal((4, 6)) + B @ rng.standard_normal((3, 6)) + 2.0 * rng.standard_normal((n, 6))
    runs = np.repeat(np.arange(n_runs), per_run)
    return {"a": A.astype(np.float32), "b": B.astype(np.float32)}, Y.astype(np.float32) + 3.0, runs


def _spied(monkeypatch, spaces, Y, runs, method):
    seen = []

    def ridge(X_train, Y_train, X_test, alphas, folds, **kw):
        seen.append((np.array(X_train), np.array(Y_train)))
        return REAL_RIDGE(X_train, Y_train, X_test, alphas, folds, **kw)

    def banded(Xs_train, Y_train, Xs_test, alphas, folds, **kw):
        seen.append((np.hstack(Xs_train), np.array(Y_train)))
        return REAL_BANDED(Xs_train, Y_train, Xs_test, alphas, folds, **kw)

    monkeypatch.setattr(partition, "ridge_fit_predict", ridge)
    monkeypatch.setattr(partition, "banded_ridge_fit_predict", banded)
    table = partition.variance_partition(spaces, Y, runs, test_runs=3, alphas=np.logspace(-1, 4, 6), n_folds=3,
                                         delays=[0, 1], method=method)
    return seen, table


@pytest.mark.parametrize("method", ["ridge", "banded"])
@pytest.mark.parametrize("change", ["shift", "scale", "permute"])
def test_held_out_run_does_not_reach_the_training_fits(monkeypatch, method, change):
    spaces, Y, runs = _data()
    test = runs == 3
    seen, table = _spied(monkeypatch, spaces, Y, runs, method)

    rng = np.random.default_rng(1)
    spaces2 = {k: v.copy() for k, v in spaces.items()}
    Y2 = Y.copy()
    if change == "shift":
        for v in spaces2.values():
            v[test] += 4.0
        Y2[test] += 0.7 * Y.std()
    elif change == "scale":
        for v in spaces2.values():
            v[test] *= 5.0
        Y2[test] *= 3.0
    else:
        order = rng.permutation(np.flatnonzero(test))
        for v in spaces2.values():
            v[test] = v[order]
        Y2[test] = Y2[order]
    seen2, table2 = _spied(monkeypatch, spaces2, Y2, runs, method)

    assert len(seen) == len(seen2) == 3  # a, b and the joint model
    for (X1, T1), (X2, T2) in zip(seen, seen2):
        np.testing.assert_array_equal(X1, X2)  # z-scoring and delays use training statistics only
        np.testing.assert_array_equal(T1, T2)  # targets are centred with the training mean only
    for key in [k for k in table.attrs if k.startswith("alphas_")]:
        np.testing.assert_array_equal(table.attrs[key], table2.attrs[key])
    assert not np.allclose(table["r2_joint"], table2["r2_joint"])  # the change did reach the held-out scores
