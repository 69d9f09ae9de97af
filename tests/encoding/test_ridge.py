"""RidgeCV: parity with himalaya and scikit-learn, solver invariants, bad inputs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold

from brainalign.encoding import ConstantVoxelWarning, MemoryPreflightError, RidgeCV
from brainalign.encoding.ridge import LOWRANK_RTOL, decompose_design, prepare_folds, solve_ridge_cv

himalaya_ridge = pytest.importorskip("himalaya.ridge")


def _data(n, p, v, seed, offset=0.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)).astype(np.float32)
    W = rng.standard_normal((p, v)) * (rng.random((1, v)) < 0.6)
    Y = X @ W * (0.5 / np.sqrt(p)) + rng.standard_normal((n, v)) + offset
    return X, Y.astype(np.float32)


def _himalaya_fit(X, Y, alphas, folds, fit_intercept):
    from himalaya.backend import set_backend

    set_backend("numpy", on_error="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return himalaya_ridge.RidgeCV(alphas=alphas, cv=folds, fit_intercept=fit_intercept).fit(X, Y)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("shape", [(240, 30), (90, 200)], ids=["tall", "wide"])
def test_parity_with_himalaya(shape, fit_intercept):
    n, p = shape
    X, Y = _data(n, p, 300, seed=1, offset=2.0 if fit_intercept else 0.0)
    X_test, Y_test = _data(60, p, 300, seed=2, offset=2.0 if fit_intercept else 0.0)
    alphas = np.logspace(-1, 4, 12)
    runs = np.repeat(np.arange(6), n // 6)
    folds = list(GroupKFold(3).split(X, groups=runs))

    h = _himalaya_fit(X, Y, alphas, folds, fit_intercept)
    b = RidgeCV(alphas=alphas, cv=folds, fit_intercept=fit_intercept, chunk_voxels=64).fit(X, Y)

    # same alpha index for every voxel (himalaya stores alphas in float32)
    h_idx = np.abs(np.log(np.asarray(h.best_alphas_, float))[:, None] - np.log(alphas)[None]).argmin(1)
    b_idx = np.searchsorted(alphas, b.best_alphas_)
    np.testing.assert_array_equal(b_idx, h_idx)
    np.testing.assert_allclose(b.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-6)
    np.testing.assert_allclose(b.cv_scores_, np.asarray(h.cv_scores_), atol=1e-4, rtol=0)
    np.testing.assert_allclose(b.coef_, np.asarray(h.coef_), atol=1e-4, rtol=0)
    np.testing.assert_allclose(b.score(X_test, Y_test), np.asarray(h.score(X_test, Y_test)), atol=1e-4, rtol=0)
    np.testing.assert_allclose(b.predict(X_test), np.asarray(h.predict(X_test)), atol=1e-4, rtol=0)
    if fit_intercept:
        np.testing.assert_allclose(b.intercept_, np.asarray(h.intercept_), atol=1e-4, rtol=0)
    assert b.coef_.shape == (p, 300) and b.coef_.dtype == np.float32
    assert b.cv_scores_per_alpha_.shape == (12, 300)


def test_parity_with_himalaya_int_cv_shared_alpha():
    X, Y = _data(150, 20, 120, seed=3)
    alphas = np.logspace(-2, 3, 9)
    h = _himalaya_fit(X, Y, alphas, 4, False)
    b = RidgeCV(alphas=alphas, cv=4, local_alpha=False).fit(X, Y)
    # himalaya's RidgeCV has no local_alpha switch; the shared alpha is the best mean score
    mean = b.cv_scores_per_alpha_.mean(1)
    assert np.unique(b.best_alphas_).size == 1
    assert b.best_alphas_[0] == alphas[np.argmax(mean + 1e-10 * np.log(alphas))]
    # a per-voxel fit with int cv equals himalaya's KFold(4) without shuffling
    b2 = RidgeCV(alphas=alphas, cv=4).fit(X, Y)
    np.testing.assert_allclose(b2.coef_, np.asarray(h.coef_), atol=1e-4, rtol=0)
    np.testing.assert_allclose(b2.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-6)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("shape", [(120, 25), (40, 90)], ids=["tall", "wide"])
def test_refit_matches_sklearn_ridge_at_fixed_alpha(shape, fit_intercept):
    X, Y = _data(*shape, 17, seed=4, offset=1.5)
    alpha = 7.0
    b = RidgeCV(alphas=[alpha], cv=3, fit_intercept=fit_intercept).fit(X, Y)
    s = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="svd").fit(X.astype(np.float64), Y.astype(np.float64))
    np.testing.assert_allclose(b.coef_, s.coef_.T, atol=1e-4, rtol=0)
    if fit_intercept:
        np.testing.assert_allclose(b.intercept_, s.intercept_, atol=1e-4, rtol=0)


@pytest.mark.parametrize("shape", [(100, 12), (30, 70)], ids=["tall", "wide"])
def test_cv_scores_equal_explicit_per_fold_ridge(shape):
    """Every alpha's CV score equals the validation MSE of an sklearn Ridge fit on that fold."""
    X, Y = _data(*shape, 5, seed=5, offset=0.7)
    alphas = np.array([0.3, 3.0, 30.0])
    folds = list(KFold(3).split(X))
    res = solve_ridge_cv(X, Y, alphas, folds, fit_intercept=True, chunk_voxels=2)
    expected = np.zeros((3, 5))
    for tr, va in folds:
        for k, a in enumerate(alphas):
            m = Ridge(alpha=a, fit_intercept=True, solver="svd").fit(X[tr].astype(float), Y[tr].astype(float))
            expected[k] += -((Y[va] - m.predict(X[va].astype(float))) ** 2).mean(0) / len(folds)
    np.testing.assert_allclose(res.cv_scores_all, expected, rtol=1e-4, atol=1e-5)


def test_primal_and_dual_decompositions_agree():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((50, 50)).astype(np.float32)
    # same matrix through both paths: transpose trick (n >= p uses XᵀX, n < p uses XXᵀ)
    tall = decompose_design(np.vstack([X, np.zeros((1, 50), np.float32)]))
    wide = decompose_design(np.hstack([X, np.zeros((50, 1), np.float32)]))
    np.testing.assert_allclose(tall.s, wide.s, rtol=1e-6)
    for F in (tall, wide):
        recon = F.Ut.T.astype(float) @ np.diag(F.s) @ F.V.T
        np.testing.assert_allclose(recon[:50, :50], X, atol=1e-4)


def test_chunking_does_not_change_results():
    X, Y = _data(80, 10, 37, seed=7)
    alphas = np.logspace(-1, 3, 6)
    folds = list(KFold(4).split(X))
    a = solve_ridge_cv(X, Y, alphas, folds, chunk_voxels=37)
    b = solve_ridge_cv(X, Y, alphas, folds, chunk_voxels=5)
    np.testing.assert_array_equal(a.best_index, b.best_index)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-6, atol=1e-7)


def test_planted_alpha_recovered_and_noise_voxels_shrunk():
    """Informative voxels get small alphas, pure-noise voxels the largest."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((400, 8)).astype(np.float32)
    W = rng.standard_normal((8, 10))
    Y = np.hstack([X @ W + 0.1 * rng.standard_normal((400, 10)), rng.standard_normal((400, 10))]).astype(np.float32)
    alphas = np.logspace(-2, 6, 9)
    b = RidgeCV(alphas=alphas, cv=5).fit(X, Y)
    assert np.all(b.best_alphas_[:10] <= 10)
    assert np.median(b.best_alphas_[10:]) >= 1e3
    r2 = b.score(*(lambda Z: (Z[:, :8], Z[:, 8:]))(np.hstack([X, Y])))
    assert np.all(r2[:10] > 0.95)


def test_memory_preflight_names_a_chunk_size_that_fits():
    X, Y = _data(200, 50, 400, seed=9)
    with pytest.raises(MemoryPreflightError, match=r"set chunk_voxels=(\d+) or less") as exc:
        RidgeCV(alphas=[1.0, 10.0], cv=4, chunk_voxels=400, memory_limit=2_500_000).fit(X, Y)
    import re

    fit = int(re.search(r"chunk_voxels=(\d+) or less", str(exc.value)).group(1))
    assert 1 <= fit < 400
    RidgeCV(alphas=[1.0, 10.0], cv=4, chunk_voxels=fit, memory_limit=2_500_000).fit(X, Y)
    with pytest.raises(MemoryPreflightError, match="no chunk_voxels fits"):
        RidgeCV(alphas=[1.0], cv=4, memory_limit=1000).fit(X, Y)


# ------------------------------------------------------------------ bad input
def test_constant_voxels_excluded_with_warning_and_count():
    X, Y = _data(60, 5, 8, seed=10)
    Y[:, [2, 5]] = 3.0
    with pytest.warns(ConstantVoxelWarning, match="2 of 8 voxels are constant"):
        b = RidgeCV(alphas=[1.0, 10.0], cv=3).fit(X, Y)
    assert b.n_excluded_voxels_ == 2
    assert np.all(b.coef_[:, [2, 5]] == 0)
    assert np.isnan(b.best_alphas_[[2, 5]]).all() and np.isfinite(np.delete(b.best_alphas_, [2, 5])).all()
    r2 = b.score(X, Y + np.random.default_rng(0).standard_normal(Y.shape).astype(np.float32))
    assert np.isnan(r2[[2, 5]]).all() and np.isfinite(np.delete(r2, [2, 5])).all()


@pytest.mark.parametrize(
    "kwargs, X_fn, Y_fn, match",
    [
        ({}, lambda X: X[:-1], lambda Y: Y, r"X has 29 samples but y has 30"),
        ({}, lambda X: X[:, 0], lambda Y: Y, r"X must be 2-D.*reshape\(-1, 1\)"),
        ({}, lambda X: np.where(np.arange(30)[:, None] == 4, np.nan, X), lambda Y: Y, r"X contains NaN or inf.*row 4"),
        ({}, lambda X: X, lambda Y: np.where(np.arange(3)[None] == 1, np.inf, Y), r"Y contains NaN or inf.*voxel 1"),
        ({"alphas": [1.0, 0.0]}, lambda X: X, lambda Y: Y, r"alphas must be finite and > 0"),
        ({"alphas": [-1.0]}, lambda X: X, lambda Y: Y, r"alphas must be finite and > 0"),
        ({"cv": 40}, lambda X: X, lambda Y: Y, r"cv=40 must be between 2 and n_samples=30"),
        ({"cv": [(np.arange(10), np.arange(10, 40))]}, lambda X: X, lambda Y: Y, r"indices outside"),
        ({"executor": "spark"}, lambda X: X, lambda Y: Y, r"executor must be"),
        ({}, lambda X: X, lambda Y: Y[None], r"Y must be 2-D"),
    ],
)
def test_bad_input_raises_value_error_naming_argument(kwargs, X_fn, Y_fn, match):
    X, Y = _data(30, 4, 3, seed=11)
    params = dict(alphas=[1.0, 10.0], cv=3)
    params.update(kwargs)
    with pytest.raises(ValueError, match=match):
        RidgeCV(**params).fit(X_fn(X), Y_fn(Y))


def test_fewer_runs_than_folds_rejected_and_run_folds_used():
    X, Y = _data(40, 4, 3, seed=12)
    runs = np.repeat([0, 1, 2, 3], 10)
    with pytest.raises(ValueError, match=r"cv=5 folds but runs has only 4 distinct runs"):
        RidgeCV(alphas=[1.0], cv=5).fit(X, Y, runs=runs)
    b = RidgeCV(alphas=[1.0], cv=4).fit(X, Y, runs=runs)
    for tr, va in b.folds_:
        assert np.unique(runs[va]).size == 1 and not np.isin(runs[tr], runs[va]).any()


def test_one_dimensional_y_like_himalaya():
    X, Y = _data(50, 6, 1, seed=13)
    b = RidgeCV(alphas=[0.1, 1.0, 10.0], cv=5, fit_intercept=True).fit(X, Y[:, 0])
    h = _himalaya_fit(X, Y[:, 0], np.array([0.1, 1.0, 10.0]), 5, True)
    assert b.coef_.shape == (6,) and np.ndim(b.intercept_) == 0
    np.testing.assert_allclose(b.coef_, np.asarray(h.coef_), atol=1e-4)
    assert abs(b.score(X, Y[:, 0]) - float(h.score(X, Y[:, 0]))) < 1e-4


def test_predict_before_fit_and_feature_mismatch():
    X, Y = _data(30, 4, 3, seed=14)
    with pytest.raises(ValueError, match="not fitted"):
        RidgeCV().predict(X)
    b = RidgeCV(alphas=[1.0], cv=3).fit(X, Y)
    with pytest.raises(ValueError, match="X has 3 features, but RidgeCV is expecting 4 features as input"):
        b.predict(X[:, :3])


def test_fold_operator_never_holds_alpha_by_test_by_train():
    """The CV operator is (n_alphas * n_val, rank), not (n_alphas, n_val, n_train)."""
    X, _ = _data(120, 10, 1, seed=15)
    ops = prepare_folds(X, list(KFold(3).split(X)), np.logspace(0, 2, 5))
    for op in ops:
        assert op.M.shape == (5 * 40, 10)
        assert op.Ut.shape == (10, 80)


def test_lowrank_alpha_expansion_equals_one_operator_per_alpha():
    """The low-rank filter expansion is used on a dense grid and changes nothing beyond float32."""
    X, Y = _data(300, 60, 200, seed=16)
    alphas = np.logspace(0, 4, 20)
    folds = list(KFold(5).split(X))
    ops = prepare_folds(X, folds, alphas, filter_rtol=LOWRANK_RTOL)
    assert all(op.W is not None and op.W.shape[1] <= 15 for op in ops)
    assert all(op.W is None for op in prepare_folds(X, folds, alphas))  # opt-in only
    fast = solve_ridge_cv(X, Y, alphas, folds, filter_rtol=LOWRANK_RTOL)
    direct = solve_ridge_cv(X, Y, alphas, folds)
    np.testing.assert_array_equal(fast.best_index, direct.best_index)
    np.testing.assert_allclose(fast.cv_scores_all, direct.cv_scores_all, rtol=2e-6, atol=0)
    np.testing.assert_array_equal(fast.coef, direct.coef)  # the refit does not use the expansion


def test_splitter_with_runs_as_groups_and_float64_input():
    """A splitter gets groups=runs; float64 inputs agree with himalaya's float64 fit to 1e-4."""
    X, Y = _data(120, 10, 40, seed=17)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    runs = np.repeat([3, 1, 2, 0], 30)
    alphas = np.logspace(-1, 3, 8)
    a = RidgeCV(alphas=alphas, cv=GroupKFold(4)).fit(X64, Y64, runs=runs)
    folds = list(GroupKFold(4).split(X, groups=runs))
    for (tr_a, va_a), (tr_b, va_b) in zip(a.folds_, folds):
        np.testing.assert_array_equal(va_a, va_b)
    h = _himalaya_fit(X64, Y64, alphas, folds, False)
    np.testing.assert_allclose(a.coef_, np.asarray(h.coef_), atol=1e-4)
    np.testing.assert_allclose(a.best_alphas_, np.asarray(h.best_alphas_), rtol=1e-6)
