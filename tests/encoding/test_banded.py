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
