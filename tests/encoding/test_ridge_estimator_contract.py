"""RidgeCV's own arguments: validation, clone round-trip, the dask preflight, the warning's text (mutmut gaps)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import KFold

from brainalign.encoding import ConstantVoxelWarning, MemoryPreflightError, RidgeCV
from brainalign.encoding.memory import estimate_fit_bytes


def _data(n=30, p=4, v=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, v)) + rng.standard_normal((n, v))
    return X.astype(dtype), Y.astype(dtype)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"chunk_voxels": 0}, r"chunk_voxels must be a positive int, got 0\."),
        ({"chunk_voxels": 2.5}, r"chunk_voxels must be a positive int, got 2\.5\."),
        ({"blas_threads": 0}, r"blas_threads must be a positive int, got 0\."),
        ({"blas_threads": 1.5}, r"blas_threads must be a positive int, got 1\.5\."),
    ],
)
def test_bad_estimator_arguments_named(kwargs, match):
    X, Y = _data()
    with pytest.raises(ValueError, match=match):
        RidgeCV(cv=3, **kwargs).fit(X, Y)


def test_smallest_valid_arguments_accepted_and_change_nothing():
    X, Y = _data()
    a = RidgeCV(cv=3, chunk_voxels=1, blas_threads=1).fit(X, Y)
    b = RidgeCV(cv=3, chunk_voxels=2048).fit(X, Y)
    np.testing.assert_array_equal(a.best_alphas_, b.best_alphas_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "y_fn, match",
    [
        (lambda Y: Y[:, :0], r"Y has no voxels \(shape\[1\] == 0\)\."),
        (lambda Y: Y.astype(str), r"Y must hold real numbers, got dtype <U"),
    ],
)
def test_bad_y_messages(y_fn, match):
    X, Y = _data()
    with pytest.raises(ValueError, match=match):
        RidgeCV(cv=3).fit(X, y_fn(Y))


def test_score_shape_mismatch_named():
    X, Y = _data()
    b = RidgeCV(cv=3).fit(X, Y)
    with pytest.raises(ValueError, match=r"y has shape \(30, 2\) but the prediction has shape \(30, 3\)\."):
        b.score(X, Y[:, :2])


def test_clone_keeps_every_non_default_argument():
    est = RidgeCV(alphas=(1.0, 2.0), cv=4, fit_intercept=True, local_alpha=False, chunk_voxels=7,
                  executor="dask", client="tcp://127.0.0.1:1", n_workers=3, blas_threads=2, memory_limit=None,
                  store="/tmp/nowhere", solver_params={"filter_rtol": 1e-7})
    params = clone(est).get_params()
    assert params == est.get_params()
    assert params["client"] == "tcp://127.0.0.1:1" and params["store"] == "/tmp/nowhere"
    assert params["solver_params"] == {"filter_rtol": 1e-7}


def test_dask_preflight_counts_the_chunks_in_flight():
    """A budget that one local chunk fits but 3 x n_workers chunks in flight do not is refused before any cluster starts."""
    X, Y = _data(n=200, p=50, v=400)
    folds = list(KFold(4).split(X))
    local = estimate_fit_bytes(200, 50, 400, 2, folds, 400, 1).peak
    dask = estimate_fit_bytes(200, 50, 400, 2, folds, 400, 6).peak
    budget = (local + dask) // 2
    RidgeCV(alphas=[1.0, 10.0], cv=folds, chunk_voxels=400, memory_limit=budget).fit(X, Y)
    with pytest.raises(MemoryPreflightError):
        RidgeCV(alphas=[1.0, 10.0], cv=folds, chunk_voxels=400, memory_limit=budget, executor="dask",
                n_workers=2).fit(X, Y)


def test_constant_voxel_warning_names_what_was_done():
    X, Y = _data()
    Y[:, 0] = 2.0
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        RidgeCV(cv=3).fit(X, Y)
    (w,) = [w for w in rec if issubclass(w.category, ConstantVoxelWarning)]
    # (stacklevel is not asserted: mutmut's trampoline adds a frame, so the file would differ under mutation runs)
    assert "excluded (coef 0, best_alphas_ and scores NaN)" in str(w.message)


def test_float64_model_predicts_from_unrounded_x():
    """A float64 fit predicts X @ coef_ + intercept_ in float64, without rounding X to float32 first."""
    X, Y = _data(dtype=np.float64)
    b = RidgeCV(cv=3, fit_intercept=True).fit(X, Y)
    X_new = X + 1e-9  # differences float32 would round away
    np.testing.assert_array_equal(b.predict(X_new), X_new @ b.coef_ + b.intercept_)
