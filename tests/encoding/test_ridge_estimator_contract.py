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
        (lambda Y: Y[:, :0], r"^Y has no voxels \(shape\[1\] == 0\)\.$"),
        (lambda Y: Y.astype(str), r"^Y must hold real numbers, got dtype <U32\.$"),
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
    assert str(w.message) == ("1 of 3 voxels are constant over the training samples and were excluded (coef 0, "
                              "best_alphas_ and scores NaN).")


def test_float64_model_predicts_from_unrounded_x():
    """A float64 fit predicts X @ coef_ + intercept_ in float64, without rounding X to float32 first."""
    X, Y = _data(dtype=np.float64)
    b = RidgeCV(cv=3, fit_intercept=True).fit(X, Y)
    X_new = X + 1e-9  # differences float32 would round away
    np.testing.assert_array_equal(b.predict(X_new), X_new @ b.coef_ + b.intercept_)


# ---------------------------------------------------------------- second mutmut round (issue 21)
class _Columns:
    """A dataset read only by column slices, as an h5py or zarr dataset is; reading it whole fails."""

    def __init__(self, a):
        self._a, self.shape, self.dtype, self.reads = a, a.shape, a.dtype, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self._a[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole of y was read")


class _ArrayOnly:
    """Converts with np.asarray, with only some of a dataset's attributes (``attrs``): not read lazily."""

    def __init__(self, a, attrs):
        self._a = a
        for name in attrs:
            setattr(self, name, getattr(a, name))

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


def test_lazy_y_is_read_by_column_chunks_and_array_likes_are_converted():
    X, Y = _data(v=10)
    ref = RidgeCV(cv=3, chunk_voxels=4).fit(X, Y)
    lazy = _Columns(Y)
    got = RidgeCV(cv=3, chunk_voxels=4).fit(X, lazy)
    np.testing.assert_array_equal(got.coef_, ref.coef_)
    assert lazy.reads == [(slice(None), slice(a, b)) for a, b in [(0, 4), (4, 8), (8, 10)]]
    # anything that lacks one of shape, __getitem__ and dtype is converted whole (np.asarray), never sliced
    for attrs in (("dtype",), ("shape",), ("shape", "dtype"), ("shape", "__getitem__"), ()):
        got = RidgeCV(cv=3, chunk_voxels=4).fit(X, _ArrayOnly(Y, attrs))
        np.testing.assert_array_equal(got.coef_, ref.coef_, err_msg=str(attrs))
    got = RidgeCV(cv=3).fit(X, Y.tolist())  # a list of lists: converted
    np.testing.assert_array_equal(got.coef_, RidgeCV(cv=3).fit(X, Y).coef_)


def test_y_refusals_are_the_whole_message():
    import scipy.sparse

    X, Y = _data()
    with pytest.raises(ValueError, match=r"^RidgeCV requires y to be passed, but the target y is None\.$"):
        RidgeCV(cv=3).fit(X, None)
    with pytest.raises(TypeError, match=r"^Sparse data was passed for y, but dense data is required; use "
                                        r"y\.toarray\(\)\.$"):
        RidgeCV(cv=3).fit(X, scipy.sparse.csr_matrix(Y))
    with pytest.raises(ValueError, match=r"^Y must be 2-D \(n_samples, n_voxels\), got shape \(30, 3, 1\)\.$"):
        RidgeCV(cv=3).fit(X, Y[:, :, None])
    with pytest.raises(ValueError, match=r"^Y must hold real numbers, got dtype bool\.$"):
        RidgeCV(cv=3).fit(X, Y > 0)
    with pytest.raises(ValueError, match=r"^X has 30 samples but y has 29; give one row of y per row of X\.$"):
        RidgeCV(cv=3).fit(X, Y[:29])
    with pytest.raises(ValueError, match=r"^executor must be 'local' or 'dask', got 'ray'\.$"):
        RidgeCV(cv=3, executor="ray").fit(X, Y)


def test_dask_on_the_gpu_backend_is_refused_with_the_fix(monkeypatch):
    from brainalign.encoding import estimators

    monkeypatch.setattr(estimators, "check_backend", lambda name: name)  # as on a machine with a GPU
    X, Y = _data()
    with pytest.raises(ValueError, match=r"^executor='dask' with backend='torch_cuda' would put every dask worker "
                                         r"on the same GPU; use executor='local' \(this process drives the GPU, "
                                         r"chunk after chunk\)\.$"):
        RidgeCV(cv=3, executor="dask", backend="torch_cuda").fit(X, Y)


def test_unfitted_model_raises_not_fitted_with_the_fix_even_after_a_failed_fit():
    from sklearn.exceptions import NotFittedError

    X, Y = _data()
    msg = r"^This RidgeCV instance is not fitted yet; call fit\(X, y\) first\.$"
    with pytest.raises(NotFittedError, match=msg):
        RidgeCV(cv=3).predict(X)
    est = RidgeCV(cv=3)
    Y[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(X, Y)  # fails inside the solver, after the fit set some attributes (store_)
    with pytest.raises(NotFittedError, match=msg):
        est.predict(X)


def test_score_follows_the_model_dtype_not_the_container_of_y():
    """A float32 model scores float64 y as the same y in float32 (bit for bit); 1-D y gives a float."""
    X, Y = _data(v=4)
    Y[:, 2] = 3.0
    with pytest.warns(ConstantVoxelWarning):
        b = RidgeCV(cv=3).fit(X, Y)
    s32 = b.score(X, Y)
    np.testing.assert_array_equal(b.score(X, Y.astype(np.float64)), s32)
    assert np.isnan(s32[2]) and np.isfinite(s32[[0, 1, 3]]).all()
    one = RidgeCV(cv=3).fit(X, Y[:, 0])
    assert isinstance(one.score(X, Y[:, 0]), float) and one.score(X, Y[:, 0]) == pytest.approx(s32[0], abs=1e-6)
    with pytest.warns(ConstantVoxelWarning):
        const = RidgeCV(cv=3).fit(X, Y[:, 2])
    assert np.isnan(const.score(X, Y[:, 2]))


def test_backend_and_solver_params_reach_the_solver(monkeypatch):
    from brainalign.encoding import estimators

    seen = []
    real = estimators.solve_ridge_cv

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(estimators, "solve_ridge_cv", spy)
    X, Y = _data()
    RidgeCV(cv=3).fit(X, Y)
    assert seen[-1]["backend"] == "numpy" and "filter_rtol" not in seen[-1]
    pytest.importorskip("torch")
    RidgeCV(cv=3, backend="torch", solver_params={"filter_rtol": 1e-3}).fit(X, Y)
    assert seen[-1]["backend"] == "torch" and seen[-1]["filter_rtol"] == 1e-3
