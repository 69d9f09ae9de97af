"""RidgeCV(backend="torch"): the same solver in torch float32 equals the numpy backend (CPU build of torch).

``"torch_cuda"`` runs the very same code with the tensors on the GPU; here (no GPU) it must refuse with a
message naming the fix. The parity tolerances are float32 rounding relative to Y's scale; a voxel may select
another alpha only where two alphas score equal to that rounding (performance.md §4.5: 1 voxel in 100,000).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold

from brainalign.encoding import RidgeCV
from brainalign.encoding import ridge as ridge_mod
from brainalign.encoding.backend import BACKENDS, check_backend, get_backend
from brainalign.encoding.ridge import LOWRANK_RTOL, prepare_folds, to_backend

torch = pytest.importorskip("torch")


def _data(n, p, v, seed, offset=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)).astype(np.float32)
    W = rng.standard_normal((p, v)) * (rng.random((1, v)) < 0.6)
    Y = (X @ W * (0.5 / np.sqrt(p)) + rng.standard_normal((n, v))) * scale + offset
    return X, Y.astype(np.float32)


def _assert_same_fit(a, b, Y, X_test):
    """Alphas equal except float32 ties; scores and predictions equal to float32 rounding of Y's scale."""
    y_scale = float(np.abs(Y).max())
    tol_score = 2e-6 * y_scale ** 2  # scores are mean squared errors of y
    s = np.sort(a.cv_scores_per_alpha_, axis=0)
    tied = (s[-1] - s[-2]) < tol_score  # the two best alphas score equal to float32 rounding
    differ = ~((a.best_alphas_ == b.best_alphas_) | (np.isnan(a.best_alphas_) & np.isnan(b.best_alphas_)))
    assert not np.any(differ & ~tied), f"{int((differ & ~tied).sum())} voxels chose another alpha without a tie"
    assert differ.sum() <= max(1, differ.size // 1000)
    same = ~differ
    np.testing.assert_allclose(b.cv_scores_per_alpha_, a.cv_scores_per_alpha_, rtol=0, atol=tol_score)
    np.testing.assert_allclose(b.cv_scores_[same], a.cv_scores_[same], rtol=0, atol=tol_score)
    np.testing.assert_allclose(b.predict(X_test)[:, same], a.predict(X_test)[:, same], rtol=0, atol=2e-5 * y_scale)
    assert b.coef_.dtype == a.coef_.dtype and b.coef_.shape == a.coef_.shape
    if a.fit_intercept:
        np.testing.assert_allclose(b.intercept_[same], a.intercept_[same], rtol=0, atol=2e-5 * y_scale)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("shape", [(240, 30), (90, 200)], ids=["tall", "wide"])
def test_torch_backend_equals_numpy(shape, fit_intercept):
    n, p = shape
    X, Y = _data(n, p, 300, seed=1, offset=2.0 if fit_intercept else 0.0)
    X_test, _ = _data(40, p, 1, seed=2)
    runs = np.repeat(np.arange(6), n // 6)
    folds = list(GroupKFold(3).split(X, groups=runs))  # non-contiguous training rows: the index_select path
    kw = dict(alphas=np.logspace(-1, 4, 12), cv=folds, fit_intercept=fit_intercept, chunk_voxels=70)
    a = RidgeCV(**kw).fit(X, Y)
    b = RidgeCV(**kw, backend="torch").fit(X, Y)
    _assert_same_fit(a, b, Y, X_test)


def test_torch_backend_raw_scale_y_lowrank_filters_and_shared_alpha():
    # BOLD-like scale (mean 1000, std ~20): agreement is relative to Y's scale
    X, Y = _data(180, 25, 150, seed=5, offset=1000.0, scale=20.0)
    X_test, _ = _data(30, 25, 1, seed=6)
    kw = dict(alphas=np.logspace(-1, 4, 20), cv=4, fit_intercept=True, chunk_voxels=64,
              solver_params=dict(filter_rtol=LOWRANK_RTOL))
    _assert_same_fit(RidgeCV(**kw).fit(X, Y), RidgeCV(**kw, backend="torch").fit(X, Y), Y, X_test)
    kw = dict(alphas=np.logspace(-1, 4, 12), cv=4, local_alpha=False)
    Y0 = Y - Y.mean(0)
    _assert_same_fit(RidgeCV(**kw).fit(X, Y0), RidgeCV(**kw, backend="torch").fit(X, Y0), Y0, X_test)


def test_fold_scores_of_one_chunk_equal_on_both_backends():
    X, Y = _data(120, 15, 40, seed=7)
    folds = list(GroupKFold(4).split(X, groups=np.repeat(np.arange(4), 30)))
    ops = prepare_folds(X, folds, np.logspace(-1, 3, 7))
    xp = get_backend("torch")
    t_ops, _, _ = to_backend(ops, None, None, xp)
    for op, t_op in zip(ops, t_ops):
        ref = ridge_mod.fold_neg_mse(op, Y)
        got = ridge_mod.fold_neg_mse(t_op, xp.asarray(Y), xp=xp)
        assert isinstance(got, torch.Tensor) and got.dtype == torch.float64 and tuple(got.shape) == ref.shape
        np.testing.assert_allclose(xp.to_numpy(got), ref, rtol=2e-6, atol=0)


def test_operators_go_to_the_device_once_per_pass_not_per_chunk(monkeypatch):
    calls = []

    def counting(*args):
        calls.append(args[-1].name)
        return to_backend(*args)

    monkeypatch.setattr(ridge_mod, "to_backend", counting)
    X, Y = _data(100, 10, 50, seed=8)
    RidgeCV(alphas=[1.0, 10.0], cv=3, chunk_voxels=8, backend="torch").fit(X, Y)  # 7 chunks
    assert calls == ["torch"]
    calls.clear()
    RidgeCV(alphas=[1.0, 10.0], cv=3, chunk_voxels=8, backend="torch", local_alpha=False).fit(X, Y)
    assert calls == ["torch", "torch"]  # the CV pass, then the refit pass with the shared alpha


def test_torch_threads_and_matmul_precision_restored_after_fit():
    X, Y = _data(60, 8, 10, seed=9)
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        seen = {}
        real = ridge_mod.fit_chunk

        def spy(*args, **kwargs):
            seen["precision"], seen["threads"] = torch.get_float32_matmul_precision(), torch.get_num_threads()
            return real(*args, **kwargs)

        ridge_mod.fit_chunk = spy
        try:
            RidgeCV(alphas=[1.0], cv=3, backend="torch", blas_threads=2).fit(X, Y)
        finally:
            ridge_mod.fit_chunk = real
        assert seen == {"precision": "highest", "threads": 2}  # no TF32/bf16 products inside the fit
        assert torch.get_float32_matmul_precision() == "medium" and torch.get_num_threads() == threads
    finally:
        torch.set_float32_matmul_precision(precision)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: torch_cuda is usable")
def test_torch_cuda_without_gpu_names_the_fix():
    X, Y = _data(40, 5, 3, seed=10)
    with pytest.raises(ValueError, match=r"torch\.cuda\.is_available\(\) is False.*CPU-only build.*"
                                         r"CUDA build of torch.*backend='torch' \(CPU\) or 'numpy'"):
        RidgeCV(alphas=[1.0], cv=2, backend="torch_cuda").fit(X, Y)


def test_unknown_backend_and_cuda_with_dask_rejected(monkeypatch):
    X, Y = _data(40, 5, 3, seed=10)
    with pytest.raises(ValueError, match=r"backend must be one of \['numpy', 'torch', 'torch_cuda'\], got 'cupy'"):
        RidgeCV(alphas=[1.0], cv=2, backend="cupy").fit(X, Y)
    assert check_backend("torch") == "torch" and set(BACKENDS) == {"numpy", "torch", "torch_cuda"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="every dask worker on the same GPU; use executor='local'"):
        RidgeCV(alphas=[1.0], cv=2, backend="torch_cuda", executor="dask").fit(X, Y)


def test_store_of_a_numpy_fit_is_not_resumed_by_a_torch_fit(tmp_path):
    X, Y = _data(60, 6, 20, seed=11)
    RidgeCV(alphas=[1.0, 10.0], cv=3, chunk_voxels=8, store=tmp_path).fit(X, Y)
    with pytest.raises(ValueError, match=r"holds chunks of a different fit \(differs in \['backend'\]\)"):
        RidgeCV(alphas=[1.0, 10.0], cv=3, chunk_voxels=8, store=tmp_path, backend="torch").fit(X, Y)


def test_numpy_fit_does_not_import_torch():
    code = ("import sys, numpy as np; from brainalign.encoding import RidgeCV; "
            "rng = np.random.default_rng(0); X = rng.standard_normal((30, 4)); "
            "RidgeCV(alphas=[1.0], cv=3).fit(X, X @ np.ones((4, 2))); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_torch_backend_keeps_constant_voxels_and_float64_outputs():
    # the estimator's rules hold on every backend: a constant voxel predicts its constant, float64 in -> float64 out
    X, Y = _data(120, 10, 30, seed=12, offset=3.0)
    Y[:, 4] = 7.5
    kw = dict(alphas=np.logspace(-1, 3, 8), cv=4, fit_intercept=True, chunk_voxels=16)
    with pytest.warns(UserWarning, match="1 of 30 voxels are constant"):
        a = RidgeCV(**kw).fit(X.astype(np.float64), Y)
    with pytest.warns(UserWarning, match="1 of 30 voxels are constant"):
        b = RidgeCV(**kw, backend="torch").fit(X.astype(np.float64), Y)
    assert b.coef_.dtype == np.float64 and b.predict(X.astype(np.float64)).dtype == np.float64
    np.testing.assert_allclose(b.predict(X[:5].astype(np.float64))[:, 4], 7.5, rtol=1e-6)
    _assert_same_fit(a, b, Y, X[:20].astype(np.float64))


def test_chunk_checks_on_the_torch_backend_name_the_voxel_and_the_constant_ones():
    # NaN/inf check, constant-voxel mask and centring run on the backend: same messages and masks as numpy
    X, Y = _data(60, 6, 40, seed=13)
    Y[:, 33] = 2.0
    kw = dict(alphas=[1.0, 10.0], cv=3, chunk_voxels=16, fit_intercept=True, backend="torch")
    with pytest.warns(UserWarning, match="1 of 40 voxels are constant"):
        m = RidgeCV(**kw).fit(X, Y)
    assert np.flatnonzero(~m.valid_voxels_).tolist() == [33] and m.intercept_[33] == np.float32(2.0)
    Y[7, 21] = np.inf
    with pytest.raises(ValueError, match=r"Y contains NaN or inf \(first in voxel 21\)"):
        RidgeCV(**kw).fit(X, Y)
