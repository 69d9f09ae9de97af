"""BandedRidgeCV's own contract beyond the solver (written from the mutation run, benchmarks/README.md): defaults,
every fitted attribute against himalaya, 1-D y, run folds, score and predict against references, silence, and the
exact messages."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import r2_score

from brainalign.encoding import BandedRidgeCV

himalaya_ridge = pytest.importorskip("himalaya.ridge")

RUNS = np.repeat(np.arange(4), [30, 50, 40, 40])  # unequal runs: run folds differ from KFold's


def _bands(seed=0, n=160, v=12):
    rng = np.random.default_rng(seed)
    X0 = rng.standard_normal((n, 5)).astype(np.float32)
    X1 = rng.standard_normal((n, 9)).astype(np.float32)
    Y = (X0 @ rng.standard_normal((5, v)) + 0.7 * rng.standard_normal((n, v)) + 3.0).astype(np.float32)
    return [X0, X1], Y


@pytest.fixture(scope="module")
def fitted():
    Xs, Y = _bands()
    kw = dict(alphas=np.logspace(-1, 3, 5), cv=4, n_iter=4, concentration=[1.0], fit_intercept=True,
              random_state=3, n_targets_batch=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # himalaya's warnings are silenced, nothing else warns
        ours = BandedRidgeCV(**kw).fit(Xs, Y, runs=RUNS)
    return Xs, Y, kw, ours


def test_documented_defaults_and_clone_round_trip():
    params = BandedRidgeCV().get_params()
    np.testing.assert_array_equal(params.pop("alphas"), np.logspace(0, 4, 9))
    assert params == dict(cv=5, n_iter=20, concentration=(0.1, 1.0), fit_intercept=False, random_state=0,
                          n_targets_batch=None, backend="numpy")
    custom = dict(alphas=(1.0, 2.0), cv=3, n_iter=2, concentration=[0.5], fit_intercept=True, random_state=7,
                  n_targets_batch=11, backend="torch")
    assert clone(BandedRidgeCV(**custom)).get_params() == custom


def test_every_fitted_attribute_equals_himalaya_on_run_folds(fitted):
    from himalaya.backend import set_backend

    Xs, Y, kw, ours = fitted
    for tr, va in ours.folds_:  # folds of whole runs, not KFold's 40-sample blocks
        assert not np.isin(RUNS[tr], RUNS[va]).any()
    assert sorted(len(va) for _, va in ours.folds_) == [30, 40, 40, 50]
    set_backend("numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = himalaya_ridge.BandedRidgeCV(
            groups="input", cv=ours.folds_, random_state=3, fit_intercept=True,
            solver_params=dict(alphas=kw["alphas"].astype(np.float32), n_iter=4, concentration=[1.0],
                               progress_bar=False),
        ).fit(Xs, Y)
    for name in ("coef_", "deltas_", "best_alphas_", "cv_scores_", "intercept_"):
        np.testing.assert_allclose(getattr(ours, name), np.asarray(getattr(ref, name)), rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    assert ours.coef_.dtype == np.float32 and ours.cv_scores_.shape == (4, 12) and ours.n_features_in_ == 14
    assert ours.band_slices_ == [slice(0, 5), slice(5, 14)]
    np.testing.assert_allclose(ours.predict(Xs), np.asarray(ref.predict(Xs)), rtol=1e-5, atol=1e-5)
    default_concentration = BandedRidgeCV(**dict(kw, concentration=(0.1, 1.0))).fit(Xs, Y, runs=RUNS)
    assert not np.allclose(default_concentration.deltas_, ours.deltas_)  # the concentration is passed on


def test_score_is_per_voxel_r2_and_split_adds_up(fitted):
    Xs, Y, _, ours = fitted
    pred = ours.predict(Xs)
    np.testing.assert_allclose(ours.score(Xs, Y), r2_score(Y, pred, multioutput="raw_values"), rtol=1e-4)
    assert ours.score(Xs, Y).shape == (12,)  # split=False is the default
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = ours.score(Xs, Y, split=True)
    assert split.shape == (2, 12)
    centred = r2_score(Y - Y.mean(0), pred - pred.mean(0), multioutput="raw_values")
    np.testing.assert_allclose(split.sum(0), centred, atol=1e-4)


def test_one_dimensional_y_gives_one_voxel_views(capsys):
    Xs, Y = _bands(seed=1, v=3)
    kw = dict(alphas=[0.1, 10.0, 1000.0], cv=3, n_iter=3, fit_intercept=True)
    two = BandedRidgeCV(**kw).fit(Xs, Y[:, :1])
    one = BandedRidgeCV(**kw).fit(Xs, Y[:, 0])
    captured = capsys.readouterr()
    assert captured.out == captured.err == ""  # no progress bar
    assert one.coef_.shape == (14,) and one.deltas_.shape == (2,) and np.ndim(one.intercept_) == 0
    np.testing.assert_allclose(one.coef_, two.coef_[:, 0], rtol=1e-6)
    np.testing.assert_allclose(one.deltas_, two.deltas_[:, 0], rtol=1e-6)
    assert one.intercept_ == pytest.approx(float(two.intercept_[0]), rel=1e-6)
    s = one.score(Xs, Y[:, 0])
    assert isinstance(s, float) and s == pytest.approx(float(r2_score(Y[:, 0], one.predict(Xs))), rel=1e-4)
    split = one.score(Xs, Y[:, 0], split=True)
    assert split.shape == (2, 1)


def test_one_band_and_one_candidate_are_allowed():
    Xs, Y = _bands(seed=2, v=2)
    m = BandedRidgeCV(alphas=[1.0], cv=2, n_iter=1).fit((Xs[0],), Y)  # a tuple of one band
    assert m.deltas_.shape == (1, 2) and m.coef_.shape == (5, 2)


def test_messages_name_the_argument_and_the_fix():
    Xs, Y = _bands(v=2)
    nonempty = r"^Xs must be a non-empty list of 2-D arrays, one per feature space \(band\); got {}\. For one band " \
               r"use RidgeCV\.$"
    with pytest.raises(ValueError, match=nonempty.format("ndarray")):
        BandedRidgeCV().fit(np.hstack(Xs), Y)
    with pytest.raises(ValueError, match=nonempty.format("list")):
        BandedRidgeCV().fit([], Y)
    with pytest.raises(ValueError, match=nonempty.format("dict")):
        BandedRidgeCV().fit({0: Xs[0]}, Y)
    with pytest.raises(ValueError, match=r"^y must be 2-D \(n_samples, n_voxels\), got shape \(160, 2, 1\)\.$"):
        BandedRidgeCV().fit(Xs, Y[:, :, None])
    with pytest.raises(ValueError, match=r"^Xs have 160 samples but y has 150; give one row of y per sample\.$"):
        BandedRidgeCV().fit(Xs, Y[:150])
    bad = Y.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^y contains NaN or inf; impute or drop those voxels before fitting\.$"):
        BandedRidgeCV().fit(Xs, bad)
    with pytest.raises(ValueError, match=r"^n_iter must be >= 1, got 0\.$"):
        BandedRidgeCV(n_iter=0).fit(Xs, Y)
    with pytest.raises(ValueError, match=r"^This BandedRidgeCV instance is not fitted yet; call fit\(Xs, y\) "
                                         r"first\.$"):
        BandedRidgeCV().predict(Xs)
    m = BandedRidgeCV(alphas=[1.0], cv=2, n_iter=1).fit(Xs, Y)
    with pytest.raises(ValueError, match=r"^Xs have \[5, 8\] features per band but the model was fitted with "
                                         r"\[5, 9\]\.$"):
        m.predict([Xs[0], Xs[1][:, :8]])


def test_split_score_of_raw_scale_y_is_silent_and_adds_up():
    Xs, Y = _bands(seed=4, v=4)
    Y = Y + 1000.0  # raw BOLD scale: the float32 centring leaves means above himalaya's 1e-6 zero-mean check
    m = BandedRidgeCV(alphas=[1.0, 100.0], cv=2, n_iter=2, fit_intercept=True).fit(Xs, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = m.score(Xs, Y, split=True)
    pred = m.predict(Xs)
    centred = r2_score(Y - Y.mean(0), pred - pred.mean(0), multioutput="raw_values")
    np.testing.assert_allclose(split.sum(0), centred, atol=1e-3)
