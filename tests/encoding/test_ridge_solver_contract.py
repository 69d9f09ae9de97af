"""The parts of encoding/ridge.py around the CV kernels, one by one (written from the mutation run of issue 21,
benchmarks/README.md): the thin SVD against numpy's (rank, scale, both Gram branches), the fold operators' fields,
one chunk's CV/refit contract (constant voxels, given alphas, CV only) and what ``solve_ridge_cv`` sends to and
keeps from ``map_chunks``."""
from __future__ import annotations

import re
from contextlib import contextmanager

import numpy as np
import pytest

from brainalign.encoding import ridge
from brainalign.encoding.backend import NumpyBackend
from brainalign.encoding.ridge import (
    _as_slice,
    check_chunk,
    chunk_bounds,
    cv_scores_chunk,
    decompose_design,
    filter_factors,
    fit_chunk,
    load_chunk,
    local_map_chunks,
    prepare_folds,
    refine_near_ties,
    run_chunk,
    select_alphas,
    solve_ridge_cv,
)

ALPHAS = np.array([0.1, 1.0, 10.0, 100.0, 1000.0])


def _low_rank(n, p, r, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * (rng.standard_normal((n, r)) @ rng.standard_normal((r, p)) + 3.0)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("shape", [(40, 9), (9, 40), (12, 12)], ids=["tall", "wide", "square"])
@pytest.mark.parametrize("scale", [1.0, 1e-7], ids=["unit", "tiny"])
def test_decomposition_equals_numpy_svd_and_finds_the_rank(shape, fit_intercept, scale):
    n, p = shape
    X = _low_rank(n, p, 5, scale=scale)  # rank 5 (+ the constant 3: rank 6 before centring, 5 after)
    F = decompose_design(X, fit_intercept=fit_intercept)
    Xc = X - X.mean(0) if fit_intercept else X
    s_ref = np.linalg.svd(Xc, compute_uv=False)
    rank = 5 if fit_intercept else 6
    assert F.rank == rank  # the rank does not depend on the units of X
    np.testing.assert_allclose(F.s, s_ref[:rank], rtol=1e-6)
    assert np.all(np.diff(F.s) < 0) and np.all(F.s > 0)
    assert F.Ut.dtype == np.float32 and F.Ut.flags.c_contiguous and F.Ut.shape == (rank, n)
    assert F.V.dtype == np.float64 and F.V.shape == (p, rank) and F.U64.dtype == np.float64
    np.testing.assert_allclose(F.U64.T @ F.U64, np.eye(rank), atol=1e-8)
    np.testing.assert_allclose(F.V.T @ F.V, np.eye(rank), atol=1e-8)
    np.testing.assert_allclose((F.U64 * F.s) @ F.V.T, Xc, atol=1e-9 * scale * np.abs(Xc).max() / scale)
    np.testing.assert_array_equal(F.Ut, F.U64.T.astype(np.float32))
    if fit_intercept:
        np.testing.assert_array_equal(F.x_mean, X.mean(0))
    else:
        assert F.x_mean is None


def test_decomposition_defaults_and_a_zero_design():
    X = _low_rank(20, 4, 4)
    assert decompose_design(X).x_mean is None  # fit_intercept defaults to False
    F = decompose_design(np.zeros((6, 3)))
    assert F.rank == 0 and F.Ut.shape == (0, 6) and F.V.shape == (3, 0)
    F = decompose_design(np.ones((6, 3)), fit_intercept=True)  # centred to zero
    assert F.rank == 0


def test_rank_threshold_is_relative_to_the_largest_eigenvalue():
    """Eigenvalues of the Gram matrix (s²) below 1e-12 of the largest are dropped: with column scales 1e6, 10 and
    1e-4, s² is about 4e13, 2e3 and 2e-7, so the third is dropped (it is above 1e-12 of the second)."""
    X = np.random.default_rng(0).standard_normal((30, 3)) * [1e6, 10, 1e-4]
    s_ref = np.linalg.svd(X, compute_uv=False)
    assert s_ref[2] ** 2 < 1e-12 * s_ref[0] ** 2 and s_ref[2] ** 2 > 1e-12 * s_ref[1] ** 2
    for design in (X, X.T):  # both Gram branches
        F = decompose_design(design)
        assert F.rank == 2
        np.testing.assert_allclose(F.s, s_ref[:2], rtol=1e-9)


def test_empty_designs_have_rank_zero():
    for shape in ((5, 0), (0, 3)):
        F = decompose_design(np.zeros(shape))
        assert F.rank == 0 and F.s.shape == (0,)
        assert F.Ut.shape == (0, shape[0]) and F.V.shape == (shape[1], 0)


def test_as_slice_only_for_consecutive_increasing_indices():
    assert _as_slice(np.array([3, 4, 5])) == slice(3, 6)
    assert _as_slice(np.array([7])) == slice(7, 8)
    assert _as_slice(np.array([], dtype=int)) is None
    assert _as_slice(np.array([3, 5, 4, 6])) is None  # right span and size, wrong order
    assert _as_slice(np.array([0, 2])) is None
    assert _as_slice(np.array([5, 4])) is None


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_fold_operators_hold_the_documented_fields(fit_intercept):
    X = _low_rank(50, 7, 7, seed=1).astype(np.float32)
    folds = [(np.arange(10, 50, dtype=np.int32), np.arange(0, 10, dtype=np.int32)),
             (np.r_[0:20, 30:50].astype(np.int32), np.r_[25:30, 20:25].astype(np.int32))]
    ops = prepare_folds(X, folds, list(ALPHAS), fit_intercept)
    for op, (train, val) in zip(ops, folds):
        F = decompose_design(X[train], fit_intercept)
        assert op.train.dtype == np.intp and op.val.dtype == np.intp
        np.testing.assert_array_equal(op.train, train)
        np.testing.assert_array_equal(op.val, val)
        assert op.contiguous_train == _as_slice(train) and op.contiguous_val == _as_slice(val)
        assert op.n_alphas == 5 and op.W is None
        np.testing.assert_array_equal(op.Ut, F.Ut)
        assert op.Ut64.flags.c_contiguous
        np.testing.assert_array_equal(op.Ut64, F.U64.T)
        Xval = X[val].astype(np.float64) - (F.x_mean if fit_intercept else 0.0)
        np.testing.assert_allclose(op.A64, Xval @ F.V, rtol=1e-12)
        np.testing.assert_array_equal(op.d64, filter_factors(F.s, ALPHAS))
        assert op.M.dtype == np.float32 and op.M.flags.c_contiguous and op.M.shape == (5 * len(val), F.rank)
        M = (op.A64[None] * op.d64[:, None]).reshape(5 * len(val), F.rank)
        np.testing.assert_array_equal(op.M, M.astype(np.float32))
    assert ops[0].contiguous_val == slice(0, 10) and ops[1].contiguous_val is None
    assert all(op.W is None for op in prepare_folds(X, folds, ALPHAS, fit_intercept, filter_rtol=0.0))
    if not fit_intercept:  # the default
        for op, default in zip(ops, prepare_folds(X, folds, ALPHAS)):
            np.testing.assert_array_equal(default.A64, op.A64)


def test_lowrank_fold_operators_keep_every_alphas_filter():
    X = _low_rank(50, 7, 7, seed=1).astype(np.float32)
    alphas = np.logspace(-1, 3, 12)
    (op,) = prepare_folds(X, [(np.arange(10, 50), np.arange(10))], alphas, True, filter_rtol=1e-7)
    q = op.W.shape[1]
    assert op.W.dtype == np.float32 and op.W.shape == (12, q) and q < 12
    assert op.d64.shape == (12, op.Ut.shape[0]) and op.M.shape == (q * 10, op.Ut.shape[0])
    np.testing.assert_allclose(op.W.astype(np.float64) @ (op.M.reshape(q, 10, -1)[:, 0] / op.A64[0]),
                               op.d64, rtol=1e-4)
    # a looser tolerance needs fewer basis filters: filter_rtol is the tolerance used
    (loose,) = prepare_folds(X, [(np.arange(10, 50), np.arange(10))], alphas, True, filter_rtol=1e-2)
    assert loose.W.shape[1] < q


@pytest.fixture(scope="module")
def chunk_problem():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 6)).astype(np.float32)
    Y = (X @ rng.standard_normal((6, 5)) + rng.standard_normal((60, 5)) + 50.0).astype(np.float32)
    Y[:, 2] = 7.25  # constant voxel
    folds = [(np.arange(20, 60), np.arange(20)), (np.r_[0:20, 40:60], np.arange(20, 40)),
             (np.arange(40), np.arange(40, 60))]
    return X, Y, folds


def _refit(X, y, alpha, fit_intercept):
    X, y = X.astype(np.float64), y.astype(np.float64)
    xm, ym = (X.mean(0), y.mean()) if fit_intercept else (np.zeros(X.shape[1]), 0.0)
    w = np.linalg.solve((X - xm).T @ (X - xm) + alpha * np.eye(X.shape[1]), (X - xm).T @ (y - ym))
    return w, ym - xm @ w


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_fit_chunk_cv_refit_and_constant_voxels(chunk_problem, fit_intercept):
    X, Y, folds = chunk_problem
    ops = prepare_folds(X, folds, ALPHAS, fit_intercept)
    full = decompose_design(X, fit_intercept)
    Yc = Y[:, 1:4]  # voxels 1..3, the constant one in the middle
    res = fit_chunk(Yc.copy(), 1, ops, full, ALPHAS, fit_intercept)
    assert (res.start, res.stop) == (1, 4)
    np.testing.assert_array_equal(res.valid, [True, False, True])
    assert np.isnan(res.mean_scores[:, 1]).all() and np.isfinite(res.mean_scores[:, [0, 2]]).all()
    assert res.coef.shape == (6, 3) and np.all(res.coef[:, 1] == 0)
    for j in (0, 2):
        w, b = _refit(X, Yc[:, j], ALPHAS[res.best_index[j]], fit_intercept)
        np.testing.assert_allclose(res.coef[:, j], w, rtol=2e-4, atol=1e-5)
        if fit_intercept:
            np.testing.assert_allclose(res.intercept[j], b, rtol=1e-5)
    if fit_intercept:
        assert res.intercept.dtype == np.float32 and res.intercept[1] == np.float32(7.25)
    else:
        assert res.intercept is None
    # CV only (shared alpha, first pass): scores, no refit
    cv = fit_chunk(Yc.copy(), 1, ops, None, ALPHAS, fit_intercept)
    np.testing.assert_array_equal(cv.mean_scores, res.mean_scores)
    assert cv.coef is None and cv.best_index is None and cv.intercept is None
    # given alphas: refit only, no CV scores
    given = fit_chunk(Yc.copy(), 1, ops, full, ALPHAS, fit_intercept, best_index=np.array([4, 4, 0]))
    np.testing.assert_array_equal(given.best_index, [4, 4, 0])
    assert given.mean_scores.shape == (5, 3) and np.isnan(given.mean_scores).all()
    w, _ = _refit(X, Yc[:, 0], ALPHAS[4], fit_intercept)
    np.testing.assert_allclose(given.coef[:, 0], w, rtol=2e-4, atol=1e-6)
    assert np.all(given.coef[:, 1] == 0)


def test_chunk_bounds_cover_the_voxels():
    assert chunk_bounds(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert chunk_bounds(4, 2) == [(0, 2), (2, 4)]
    assert chunk_bounds(3, 10) == [(0, 3)]


def _recording(calls):
    def map_chunks(Y, bounds, shared):
        calls.append((list(bounds), dict(shared)))
        return local_map_chunks(Y, bounds, shared)
    return map_chunks


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_solve_ridge_cv_outputs_and_what_map_chunks_receives(chunk_problem, fit_intercept):
    X, Y, folds = chunk_problem
    calls = []
    res = solve_ridge_cv(X, Y, ALPHAS, folds, fit_intercept, chunk_voxels=2, map_chunks=_recording(calls),
                         blas_threads=1)
    (bounds, shared), = calls
    assert bounds == [(0, 2), (2, 4), (4, 5)]
    assert shared["full"] is not None and shared["fit_intercept"] is fit_intercept and "best_index" not in shared
    assert shared["backend"] == "numpy" and shared["blas_threads"] == 1 and shared["V32"].dtype == np.float32
    assert shared["full"].U64 is None and len(shared["ops"]) == 3
    np.testing.assert_array_equal(shared["alphas"], ALPHAS)
    valid = np.arange(5) != 2
    np.testing.assert_array_equal(res.valid, valid)
    assert res.best_index[2] == -1 and np.isnan(res.best_alphas[2]) and np.isnan(res.cv_scores[2])
    np.testing.assert_array_equal(res.best_alphas[valid], ALPHAS[res.best_index[valid]])
    assert res.best_index.dtype == np.intp and res.coef.dtype == np.float32 and np.all(res.coef[:, 2] == 0)
    slope = np.log(ALPHAS) * 1e-10
    cols = np.flatnonzero(valid)
    np.testing.assert_array_equal(res.cv_scores[cols],
                                  res.cv_scores_all[res.best_index[cols], cols] + slope[res.best_index[cols]])
    # the default chunk is 2048 voxels: one chunk here, same numbers
    calls.clear()
    one = solve_ridge_cv(X, Y, ALPHAS, folds, fit_intercept, map_chunks=_recording(calls))
    assert calls[0][0] == [(0, 5)] and calls[0][1]["blas_threads"] == 1  # one BLAS thread by default
    np.testing.assert_array_equal(one.best_index, res.best_index)
    # the solve is the chunks' fits put together (the same bits as fit_chunk with the float32 V)
    ops = prepare_folds(X, folds, ALPHAS, fit_intercept)
    chunk = fit_chunk(Y.copy(), 0, ops, decompose_design(X, fit_intercept), ALPHAS, fit_intercept)
    np.testing.assert_array_equal(one.coef, chunk.coef)
    np.testing.assert_array_equal(one.cv_scores_all, chunk.mean_scores)
    # X is used at float32 precision: float64 X gives the same bits, the float64 near-tie re-scoring included
    # (alphas 2.3 % apart: every voxel is re-scored, see the near-tie test below)
    tie = np.logspace(4, 4.01, 4)
    x32 = solve_ridge_cv(X, Y, tie, folds, fit_intercept)
    x64 = solve_ridge_cv(X.astype(np.float64) + 1e-12, Y, tie, folds, fit_intercept)
    np.testing.assert_array_equal(x64.coef, x32.coef)
    np.testing.assert_array_equal(x64.cv_scores_all, x32.cv_scores_all)
    if fit_intercept:
        assert res.intercept[2] == np.float32(7.25) and res.intercept.dtype == np.float32
    else:
        assert res.intercept is None


def test_filter_rtol_reaches_the_fold_operators(chunk_problem):
    X, Y, folds = chunk_problem
    alphas = np.logspace(-1, 3, 12)
    for rtol, lowrank in ((1e-7, True), (None, False)):
        calls = []
        solve_ridge_cv(X, Y, alphas, folds, map_chunks=_recording(calls), filter_rtol=rtol)
        assert all((op.W is not None) is lowrank for op in calls[0][1]["ops"])


def test_shared_alpha_two_passes(chunk_problem):
    X, Y, folds = chunk_problem
    calls = []
    res = solve_ridge_cv(X, Y, ALPHAS, folds, True, local_alpha=False, chunk_voxels=3, map_chunks=_recording(calls))
    (b1, first), (b2, second) = calls
    assert b1 == b2 == [(0, 3), (3, 5)]
    assert first["full"] is None and "best_index" not in first
    valid = res.valid
    best = int(np.argmax(res.cv_scores_all[:, valid].mean(1) + np.log(ALPHAS) * 1e-10))
    assert second["best_index"] == best and second["full"] is not None and second["blas_threads"] == 1
    assert second["backend"] == "numpy" and second["fit_intercept"] is True
    np.testing.assert_array_equal(res.best_index, np.where(valid, best, -1))
    for j in np.flatnonzero(valid):
        w, b = _refit(X, Y[:, j], ALPHAS[best], True)
        np.testing.assert_allclose(res.coef[:, j], w, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(res.intercept[j], b, rtol=1e-5)
    assert res.intercept[2] == np.float32(7.25) and np.all(res.coef[:, 2] == 0)
    # one valid voxel: its alpha is the shared one
    one = solve_ridge_cv(X, Y[:, 1:3], ALPHAS, folds, True, local_alpha=False)
    np.testing.assert_array_equal(one.best_index, [int(np.argmax(one.cv_scores_all[:, 0])), -1])
    # no valid voxel: the last (largest) alpha is "shared", every voxel excluded, constants kept
    const = np.tile(np.float32([1.0, 2.0]), (60, 1))
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        res = solve_ridge_cv(X, const, ALPHAS, folds, True, local_alpha=False)
    assert not res.valid.any() and np.all(res.best_index == -1) and np.isnan(res.cv_scores).all()
    np.testing.assert_array_equal(res.intercept, [1.0, 2.0])


def test_fit_chunk_near_tie_width_is_each_voxels_mean_square(chunk_problem):
    """Raw-scale voxels (mean 50) without intercept, four alphas 2.3 % apart: the two best are 4-7e-3 apart, inside
    the width 2 * NEAR_TIE_RTOL * mean square (about 1e-2) and far outside 2 * NEAR_TIE_RTOL (the width if the
    mean square were taken as 1): the chunk's scores are re-scored exactly as refine_near_ties documents."""
    X, Y, folds = chunk_problem
    alphas = np.logspace(4, 4.01, 4)
    ops = prepare_folds(X, folds, alphas, False)
    res = fit_chunk(Y.copy(), 0, ops, None, alphas, False)
    raw = cv_scores_chunk(ops, Y, False).mean(0)
    raw[:, 2] = np.nan
    expected, refined = refine_near_ties(ops, Y, raw, alphas, False)
    np.testing.assert_array_equal(refined, [True, True, False, True, True])
    np.testing.assert_array_equal(res.mean_scores, expected)
    np.testing.assert_array_equal(refine_near_ties(ops, Y, raw, alphas)[0], expected)  # no intercept by default
    narrow, refined_narrow = refine_near_ties(ops, Y, raw, alphas, False, mean_square=np.ones(5))
    assert not refined_narrow.any() and not np.array_equal(narrow, expected)  # the test can tell the widths apart


class _RecordingBackend(NumpyBackend):
    def __init__(self, log):
        super().__init__()
        self.log = log

    @contextmanager
    def threads(self, n_threads):
        self.log.append(("threads", n_threads))
        with super().threads(n_threads):
            yield


def _shared(X, folds, fit_intercept=False, **extra):
    ops = prepare_folds(X, folds, ALPHAS, fit_intercept)
    return dict(ops=ops, full=decompose_design(X, fit_intercept), alphas=ALPHAS, fit_intercept=fit_intercept, **extra)


def test_run_chunk_uses_the_backend_and_threads_it_is_given(chunk_problem, monkeypatch):
    X, Y, folds = chunk_problem
    log = []
    monkeypatch.setattr(ridge, "_backend", lambda name: (log.append(("backend", name)), _RecordingBackend(log))[1])
    shared = _shared(X, folds, backend="numpy", blas_threads=3)
    res = run_chunk(Y[:, :2].copy(), 0, shared)
    assert log == [("backend", "numpy"), ("threads", 3)]
    assert ("on_backend", "numpy") in shared  # the operators on the backend are kept for the next chunk
    np.testing.assert_array_equal(res.coef, fit_chunk(Y[:, :2].copy(), 0, shared["ops"], shared["full"], ALPHAS,
                                                      False).coef)
    log.clear()
    run_chunk(Y[:, :2].copy(), 0, _shared(X, folds))  # defaults: numpy, one BLAS thread
    assert log == [("backend", "numpy"), ("threads", 1)]
    monkeypatch.undo()
    with pytest.raises(ValueError, match="backend must be one of"):
        run_chunk(Y[:, :2].copy(), 0, _shared(X, folds, backend="bogus"))


def test_run_chunk_takes_one_alpha_or_one_per_voxel(chunk_problem):
    X, Y, folds = chunk_problem
    per_voxel = run_chunk(Y[:, :2].copy(), 0, _shared(X, folds, best_index=np.array([4, 0])))
    np.testing.assert_array_equal(per_voxel.best_index, [4, 0])
    one = run_chunk(Y[:, :2].copy(), 0, _shared(X, folds, best_index=np.int64(3)))
    np.testing.assert_array_equal(one.best_index, [3, 3])
    w, _ = _refit(X, Y[:, 1], ALPHAS[0], False)
    np.testing.assert_allclose(per_voxel.coef[:, 1], w, rtol=2e-4, atol=1e-6)


def test_filter_factors_are_computed_in_float64():
    s = np.float32([3.0, 1.7, 0.3])
    out = filter_factors(s, [1, 10])
    s64 = s.astype(np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, s64 / (s64 ** 2 + np.array([[1.0], [10.0]])))


def test_nan_message_names_the_voxel_and_the_fix():
    Y = np.ones((5, 3), np.float32)
    Y[2, 1] = np.nan
    msg = ("Y contains NaN or inf (first in voxel 8); remove or impute those voxels "
           "(e.g. np.nan_to_num or a brain mask) before fitting.")
    with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
        check_chunk(Y, 7)


def test_a_memmap_chunk_is_read_with_pread(tmp_path, monkeypatch):
    Y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64, shape=(4, 6))
    Y[:] = np.arange(24).reshape(4, 6)
    calls = []
    pread = ridge._pread_memmap_columns
    monkeypatch.setattr(ridge, "_pread_memmap_columns", lambda *a: (calls.append(a), pread(*a))[1])
    out = load_chunk(Y, 2, 5)
    assert len(calls) == 1 and calls[0][0] is Y and calls[0][1:] == (2, 5)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, Y[:, 2:5])


def test_select_alphas_breaks_exact_ties_toward_the_larger_alpha_per_voxel_by_default():
    scores = np.array([[0.0, -1.0], [0.0, -2.0], [0.0, -3.0]])  # voxel 0: all tie; voxel 1: first alpha best
    alphas = np.array([1.0, 10.0, 100.0])
    idx, best = select_alphas(scores, alphas)
    np.testing.assert_array_equal(idx, [2, 0])  # per voxel (default); a tie goes to the largest alpha, as himalaya
    np.testing.assert_array_equal(best, [1e-10 * np.log(100.0), -1.0])
