"""BandedRidgeCV: thin wrapper over himalaya's banded ridge with brainalign conventions."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainalign.encoding import BandedRidgeCV

himalaya_ridge = pytest.importorskip("himalaya.ridge")


def _bands(seed=0, n=160, v=30):
    rng = np.random.default_rng(seed)
    X0 = rng.standard_normal((n, 6)).astype(np.float32)
    X1 = rng.standard_normal((n, 15)).astype(np.float32)
    W0 = rng.standard_normal((6, v))
    Y = (X0 @ W0 + 0.5 * rng.standard_normal((n, v))).astype(np.float32)  # only band 0 drives Y
    return [X0, X1], Y


def test_equals_himalaya_banded_ridge_on_same_folds():
    from himalaya.backend import set_backend

    Xs, Y = _bands()
    runs = np.repeat(np.arange(4), 40)
    alphas = np.logspace(-1, 3, 5)
    ours = BandedRidgeCV(alphas=alphas, cv=4, n_iter=6, random_state=1).fit(Xs, Y, runs=runs)
    set_backend("numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = himalaya_ridge.BandedRidgeCV(
            groups="input", cv=ours.folds_, random_state=1,
            solver_params=dict(alphas=alphas.astype(np.float32), n_iter=6, progress_bar=False),
        ).fit(Xs, Y)
    np.testing.assert_allclose(ours.coef_, np.asarray(ref.coef_), atol=1e-6)
    np.testing.assert_allclose(ours.deltas_, np.asarray(ref.deltas_), atol=1e-6)
    for tr, va in ours.folds_:  # folds of whole runs
        assert not np.isin(runs[tr], runs[va]).any()


def test_planted_band_gets_the_weight_and_split_scores_add_up():
    Xs, Y = _bands(seed=2)
    test_Xs, test_Y = _bands(seed=2, n=200)[0], None
    m = BandedRidgeCV(alphas=np.logspace(-2, 4, 7), cv=4, n_iter=10, fit_intercept=True).fit(Xs, Y)
    # the driving band is weighted far more than the noise band in most voxels
    assert np.mean(m.deltas_[0] > m.deltas_[1] + 1.0) > 0.8
    Xs2, Y2 = _bands(seed=2)
    split = m.score(Xs2, Y2, split=True)
    assert split.shape == (2, 30)
    pred = m.predict(Xs2)
    centred_r2 = 1 - (((Y2 - Y2.mean(0)) - (pred - pred.mean(0))) ** 2).sum(0) / ((Y2 - Y2.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(split.sum(0), centred_r2, atol=1e-4)
    assert np.all(split[0] > split[1])
    assert m.predict(test_Xs).shape == (200, 30)


def test_banded_bad_inputs():
    Xs, Y = _bands()
    with pytest.raises(ValueError, match="Xs must be a non-empty list"):
        BandedRidgeCV().fit(np.hstack(Xs), Y)
    with pytest.raises(ValueError, match="different numbers of samples"):
        BandedRidgeCV().fit([Xs[0], Xs[1][:-1]], Y)
    with pytest.raises(ValueError, match="alphas must be finite and > 0"):
        BandedRidgeCV(alphas=[0.0, 1.0]).fit(Xs, Y)
    with pytest.raises(ValueError, match=r"Xs\[1\] contains NaN"):
        BandedRidgeCV().fit([Xs[0], np.full_like(Xs[1], np.nan)], Y)


def test_torch_backend_equals_numpy_and_returns_numpy(monkeypatch):
    # himalaya's own torch backend under brainalign's estimator: same band weights and alphas, numpy attributes,
    # and himalaya's global backend restored after the fit
    pytest.importorskip("torch")
    import himalaya.backend
    from himalaya.backend import get_backend

    asked = []
    real = himalaya.backend.set_backend
    monkeypatch.setattr(himalaya.backend, "set_backend", lambda b, **kw: asked.append(str(b)) or real(b, **kw))

    Xs, Y = _bands(seed=3)
    kw = dict(alphas=np.logspace(-1, 4, 8), cv=4, n_iter=5, fit_intercept=True, random_state=2)
    a = BandedRidgeCV(**kw).fit(Xs, Y)
    before = get_backend().__name__
    b = BandedRidgeCV(**kw, backend="torch").fit(Xs, Y)
    assert get_backend().__name__ == before
    assert asked[0] == "numpy" and asked[2] == "torch"  # each fit sets its backend, then restores the previous
    for name in ("coef_", "deltas_", "best_alphas_", "cv_scores_", "intercept_"):
        assert type(getattr(b, name)) is np.ndarray, name
    np.testing.assert_allclose(b.best_alphas_, a.best_alphas_, rtol=1e-5)  # 1 / sum(exp(deltas)): float32 bits
    np.testing.assert_allclose(b.deltas_, a.deltas_, atol=1e-5)
    scale = float(np.abs(Y).max())
    np.testing.assert_allclose(b.cv_scores_, a.cv_scores_, atol=2e-6 * scale ** 2, rtol=0)
    np.testing.assert_allclose(b.predict(Xs), a.predict(Xs), atol=2e-5 * scale, rtol=0)
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ValueError, match="backend='torch_cuda' needs a CUDA GPU"):
            BandedRidgeCV(**dict(kw, n_iter=1), backend="torch_cuda").fit(Xs, Y)
