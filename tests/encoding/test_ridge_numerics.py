"""RidgeCV numerics against himalaya's float64 fit: near-tied alphas, raw-scale Y, constant voxels (issue 19 §3)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import KFold

from brainalign.encoding import ConstantVoxelWarning, RidgeCV
from brainalign.encoding import ridge as ridge_mod

himalaya_ridge = pytest.importorskip("himalaya.ridge")


def _himalaya64(X, Y, alphas, folds, fit_intercept):
    """himalaya's solve_ridge_cv_svd in float64: the reference free of float32 rounding."""
    from himalaya.backend import set_backend

    set_backend("numpy", on_error="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = himalaya_ridge.solve_ridge_cv_svd(
            X.astype(np.float64), Y.astype(np.float64), alphas=alphas, cv=folds, fit_intercept=fit_intercept
        )
    return out


def _alpha_index(best_alphas, alphas):
    return np.abs(np.log(np.asarray(best_alphas, float))[:, None] - np.log(alphas)[None]).argmin(1)


def test_near_tied_alphas_select_what_himalaya_selects(monkeypatch):
    """A 300-alpha grid puts neighbouring alphas within float32 rounding of each other.

    Without the float64 re-scoring of near ties (NEAR_TIE_RTOL < 0) a few voxels
    out of 1000 pick another alpha than himalaya's float64 fit; with it, none does.
    """
    rng = np.random.default_rng(2)
    X = rng.standard_normal((100, 10)).astype(np.float32)
    Y = (X @ (rng.standard_normal((10, 1000)) * 0.3 / np.sqrt(10)) + rng.standard_normal((100, 1000)))
    Y = Y.astype(np.float32)
    alphas = np.logspace(0, 3, 300)
    folds = list(KFold(5).split(X))
    h_idx = _alpha_index(_himalaya64(X, Y, alphas, folds, False)[0], alphas)

    monkeypatch.setattr(ridge_mod, "NEAR_TIE_RTOL", -1.0)  # refinement off: the disagreement
    before = ridge_mod.solve_ridge_cv(X, Y, alphas, folds)
    assert (before.best_index != h_idx).sum() >= 2

    monkeypatch.undo()
    after = RidgeCV(alphas=alphas, cv=folds).fit(X, Y)
    np.testing.assert_array_equal(np.searchsorted(alphas, after.best_alphas_), h_idx)
    # the re-scored voxels moved only between alphas that were within float32 rounding
    changed = before.best_index != h_idx
    gap = before.cv_scores_all[before.best_index[changed], changed] - before.cv_scores_all[h_idx[changed], changed]
    assert np.all(np.abs(gap) <= 1e-6 * np.mean(Y[:, changed].astype(float) ** 2, 0))


def test_raw_scale_y_cv_scores_agree_relative_to_its_spread():
    """BOLD-like Y (mean 1000, std 20) with an intercept: cv_scores_ within 3e-7 of var(Y) of himalaya float64."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 20)).astype(np.float32)
    Y = X @ (rng.standard_normal((20, 2000)) * 0.3 / np.sqrt(20)) + rng.standard_normal((200, 2000))
    Y = (1000 + 20 * Y).astype(np.float32)
    alphas = np.logspace(0, 4, 20)
    folds = list(KFold(5).split(X))
    best, coef, cv_scores, intercept = _himalaya64(X, Y, alphas, folds, True)
    b = RidgeCV(alphas=alphas, cv=folds, fit_intercept=True).fit(X, Y)
    rel = np.abs(b.cv_scores_ - np.asarray(cv_scores)) / Y.var(0, dtype=np.float64)
    assert rel.max() < 3e-7, rel.max()
    np.testing.assert_array_equal(np.searchsorted(alphas, b.best_alphas_), _alpha_index(best, alphas))
    np.testing.assert_allclose(b.intercept_, np.asarray(intercept), rtol=1e-6)
    np.testing.assert_allclose(b.coef_, np.asarray(coef), atol=2e-4 * 20)


def test_constant_voxel_with_intercept_predicts_its_constant():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 5)).astype(np.float32)
    Y = (X @ rng.standard_normal((5, 4)) + rng.standard_normal((60, 4))).astype(np.float32)
    Y[:, 1] = 1234.5
    with pytest.warns(ConstantVoxelWarning, match="1 of 4 voxels are constant"):
        b = RidgeCV(alphas=[1.0, 10.0], cv=3, fit_intercept=True).fit(X, Y)
    X_new = rng.standard_normal((7, 5)).astype(np.float32)
    np.testing.assert_array_equal(b.predict(X_new)[:, 1], np.float32(1234.5))
    assert b.intercept_[1] == np.float32(1234.5) and np.all(b.coef_[:, 1] == 0)
    assert np.isnan(b.best_alphas_[1]) and np.isnan(b.cv_scores_[1])
    r2 = b.score(X_new, np.c_[X_new @ b.coef_[:, :1], np.full(7, 1234.5), X_new @ b.coef_[:, 2:]])
    assert np.isnan(r2[1]) and np.isfinite(np.delete(r2, 1)).all()
    # a 1-D constant target: the same constant, R² NaN as documented
    with pytest.warns(ConstantVoxelWarning):
        b1 = RidgeCV(alphas=[1.0], cv=3, fit_intercept=True).fit(X, Y[:, 1])
    np.testing.assert_array_equal(b1.predict(X_new), np.float32(1234.5))
    assert np.isnan(b1.score(X_new, np.full(7, 1234.5)))
