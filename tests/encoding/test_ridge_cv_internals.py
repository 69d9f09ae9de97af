"""The CV kernels of encoding/ridge.py one by one (written from the mutation run, benchmarks/README.md): the float32
fold scores against the float64 ones and a plain numpy ridge, the low-rank filter expansion at its boundaries, and the
near-tie re-scoring by its documented rule. The end-to-end tests cannot see these: the float64 re-scoring of near ties
repairs a wrong float32 score whenever all alphas tie, so a broken kernel still selects himalaya's alphas."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainalign.encoding.ridge import (
    NEAR_TIE_RTOL,
    cv_scores_chunk,
    fold_neg_mse,
    fold_neg_mse_exact,
    lowrank_filters,
    prepare_folds,
    refine_near_ties,
)

ALPHAS = np.array([0.3, 3.0, 30.0, 300.0])


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 8)).astype(np.float32)
    Y = (X @ rng.standard_normal((8, 5)) + rng.standard_normal((60, 5)) + 2.0).astype(np.float32)
    folds = [(np.r_[0:20, 30:60], np.arange(20, 30)), (np.arange(20, 60), np.r_[5:15, 0:5])]  # one fold not contiguous
    return X, Y, folds


def _numpy_ridge_scores(X, Y, train, val, fit_intercept, alphas=ALPHAS):
    X, Y = X.astype(np.float64), Y.astype(np.float64)
    Xtr, Ytr, Xva, Yva = X[train], Y[train], X[val], Y[val]
    if fit_intercept:
        xm, ym = Xtr.mean(0), Ytr.mean(0)
        Xtr, Ytr, Xva, Yva = Xtr - xm, Ytr - ym, Xva - xm, Yva - ym
    out = []
    for a in alphas:
        W = np.linalg.solve(Xtr.T @ Xtr + a * np.eye(X.shape[1]), Xtr.T @ Ytr)
        out.append(-((Yva - Xva @ W) ** 2).mean(0))
    return np.array(out)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_fold_scores_equal_a_numpy_ridge(problem, fit_intercept):
    X, Y, folds = problem
    ops = prepare_folds(X, folds, ALPHAS, fit_intercept)
    a_idx, v_idx = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    for op, (train, val) in zip(ops, folds):
        ref = _numpy_ridge_scores(X, Y, train, val, fit_intercept)
        exact = fold_neg_mse_exact(op, Y, a_idx.ravel(), v_idx.ravel(), fit_intercept).reshape(4, 5)
        np.testing.assert_allclose(exact, ref, rtol=1e-9)
        fast = fold_neg_mse(op, Y, fit_intercept)
        assert fast.dtype == np.float64 and fast.shape == (4, 5)
        np.testing.assert_allclose(fast, ref, rtol=2e-5)
    stacked = cv_scores_chunk(ops, Y, fit_intercept)
    assert stacked.shape == (2, 4, 5)
    np.testing.assert_array_equal(stacked[1], fold_neg_mse(ops[1], Y, fit_intercept))


def test_fold_score_defaults_are_without_intercept(problem):
    X, Y, folds = problem
    ops = prepare_folds(X, folds, ALPHAS)
    np.testing.assert_array_equal(fold_neg_mse(ops[0], Y), fold_neg_mse(ops[0], Y, False))
    np.testing.assert_array_equal(cv_scores_chunk(ops, Y), cv_scores_chunk(ops, Y, False))
    a, v = np.array([0, 3]), np.array([1, 4])
    np.testing.assert_array_equal(fold_neg_mse_exact(ops[0], Y, a, v), fold_neg_mse_exact(ops[0], Y, a, v, False))


def test_lowrank_fold_scores_equal_a_numpy_ridge(problem):
    X, Y, folds = problem
    alphas = np.logspace(-1, 3, 12)
    ops = prepare_folds(X, folds, alphas, True, filter_rtol=1e-7)
    assert ops[0].W is not None
    ref = _numpy_ridge_scores(X, Y, *folds[0], True, alphas)
    np.testing.assert_allclose(fold_neg_mse(ops[0], Y, True), ref, rtol=2e-5)


def _rank_k(n_alphas, k, r=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 1.5, (n_alphas, k)) @ rng.uniform(0.5, 1.5, (k, r))


def test_lowrank_filters_use_the_fewest_basis_filters_up_to_three_quarters():
    for k in (1, 3, 6):  # 8 alphas: at most int(0.75 * 8) = 6 basis filters
        d = _rank_k(8, k)
        W, H = lowrank_filters(d)
        assert W.shape == (8, k) and H.shape == (k, 20)
        np.testing.assert_allclose(W @ H, d, rtol=1e-9)
    assert lowrank_filters(_rank_k(8, 7)) is None  # 7 > 6: does not pay off
    assert lowrank_filters(_rank_k(8, 7), max_fraction=1.0)[0].shape == (8, 7)
    assert lowrank_filters(_rank_k(4, 1))[0].shape == (4, 1)  # four alphas are enough to try
    assert lowrank_filters(_rank_k(3, 1)) is None


def _rule(mean_scores, alphas, ms, rtol, exact):
    """refine_near_ties' docstring as code: the voxels whose two best alphas are within 2 * rtol * ms, and there
    the alphas within 2 * rtol * ms of the best, get their float64 scores."""
    s = mean_scores + 1e-10 * np.log(alphas)[:, None]
    filled = np.where(np.isnan(s), -np.inf, s)
    top = np.sort(filled, axis=0)[::-1]
    width = 2 * rtol * ms
    with np.errstate(invalid="ignore"):
        refined = np.isfinite(top[0]) & (top[0] - top[1] <= width)
    out = mean_scores.copy()
    pick = (s >= top[0] - width) & refined
    out[pick] = exact[pick]
    return out, refined


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_near_ties_are_rescored_by_the_documented_rule(problem, fit_intercept):
    X, Y, folds = problem
    ops = prepare_folds(X, folds, ALPHAS, fit_intercept)
    a_idx, v_idx = np.meshgrid(np.arange(4), np.arange(5), indexing="ij")
    exact = np.mean([fold_neg_mse_exact(op, Y, a_idx.ravel(), v_idx.ravel(), fit_intercept) for op in ops],
                    axis=0).reshape(4, 5)
    ms = Y.astype(np.float64).var(0) if fit_intercept else np.square(Y.astype(np.float64)).mean(0)
    r = NEAR_TIE_RTOL
    gaps = np.array([  # distance below each voxel's best, in units of rtol * ms (best first in a shuffled order)
        [1.5, 0.0, 1.9, 2.6],  # refined: alphas 1, 0 and 2 re-scored, 3 not
        [0.0, 2.5, 4.0, 9.0],  # two best 2.5 apart: not refined
        [0.0, 0.0, 0.0, 0.0],  # all NaN (an excluded voxel): skipped, silently
        [3.0, 1.0, 0.0, 0.2],  # refined: 2, 3 and 1
        [0.0, 0.5, 50.0, 60.0],  # refined: 0 and 1
    ]).T
    base = exact.max(0) + 1.0  # float32 scores that are off, so a re-scored entry is seen
    M = base[None, :] - gaps * r * ms[None, :]
    M[:, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, refined = refine_near_ties(ops, Y, M, ALPHAS, fit_intercept)
    want, want_refined = _rule(M, ALPHAS, ms, r, exact)
    assert refined.dtype == bool
    np.testing.assert_array_equal(refined, [True, False, False, True, True])
    np.testing.assert_array_equal(refined, want_refined)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:, 2]).all() and not np.array_equal(got, M)
    # the caller's mean squares give the same; a wider rtol refines more; a negative one turns it off
    np.testing.assert_array_equal(refine_near_ties(ops, Y, M, ALPHAS, fit_intercept, mean_square=ms)[0], got)
    wide, wide_refined = refine_near_ties(ops, Y, M, ALPHAS, fit_intercept, rtol=10 * r)
    np.testing.assert_array_equal(wide_refined, [True, True, False, True, True])
    np.testing.assert_array_equal(wide, _rule(M, ALPHAS, ms, 10 * r, exact)[0])
    off, none = refine_near_ties(ops, Y, M, ALPHAS, fit_intercept, rtol=-1.0)
    assert not none.any() and none.dtype == bool
    np.testing.assert_array_equal(off, M)


def test_near_ties_with_two_alphas_and_one(problem):
    X, Y, folds = problem
    ops = prepare_folds(X, folds, ALPHAS[:2])
    ms = np.square(Y.astype(np.float64)).mean(0)
    M = np.vstack([np.zeros(5), -NEAR_TIE_RTOL * ms])  # two alphas within the width everywhere
    got, refined = refine_near_ties(ops, Y, M, ALPHAS[:2])
    assert refined.all() and not np.array_equal(got, M)
    one = prepare_folds(X, folds, ALPHAS[:1])
    same, none = refine_near_ties(one, Y, M[:1], ALPHAS[:1])
    assert none.dtype == bool and none.shape == (5,) and not none.any()
    np.testing.assert_array_equal(same, M[:1])
