"""Layer curves find a planted peak layer; Xiao et al.'s best-layer rule."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding.fit_predict import ridge_fit_predict
from brainalign.analysis.layers import best_layer, layer_curves, normalised_depth, peak_layers
from brainalign.analysis.metrics import pearson_r
from brainalign.encoding.splits import leave_runs_out, train_test_by_runs
from brainalign.testing.planted import planted_layers


def _encode_layers(sim):
    train, test = train_test_by_runs(sim.runs, [4])
    folds = leave_runs_out(sim.runs[train], 2)
    out = []
    for X in sim.layers:
        pred, _ = ridge_fit_predict(X[train], sim.Y[train], X[test], np.logspace(-1, 4, 8), folds)
        out.append(pearson_r(sim.Y[test], pred))
    return np.array(out)


def test_planted_peak_layer_found_by_encoding_each_layer():
    sim = planted_layers({"early": 1, "mid": 4, "late": 6}, n_layers=8, seed=0)
    scores = _encode_layers(sim)  # (n_layers, n_voxels)
    curves = layer_curves(scores, sim.masks, how="mean")
    peaks = peak_layers(curves).set_index("roi")
    for roi, p in sim.peaks.items():
        assert peaks.loc[roi, "peak_layer"] == p
        assert peaks.loc[roi, "peak_depth"] == pytest.approx(p / 7)


def test_best_layer_is_median_voxels_then_median_subjects_then_max():
    rng = np.random.default_rng(0)
    scores = rng.normal(0.1, 0.01, size=(5, 6, 40))
    scores[:, 3, :30] += 0.2  # most voxels of every subject peak at layer 3
    scores[0, 5, :] += 1.0  # one outlier subject
    scores[:, 1, :5] += 5.0  # a few outlier voxels
    out = best_layer(scores)
    assert out["best_layer"] == 3 and out["best_depth"] == pytest.approx(0.6)
    subj = np.median(scores, axis=2)
    assert out["score"] == pytest.approx(np.median(subj, axis=0)[3])
    assert out["mad"] == pytest.approx(np.median(np.abs(subj[:, 3] - np.median(subj[:, 3]))))
    # the mean-based rule would be fooled by the outliers
    assert np.argmax(scores.mean(axis=(0, 2))) != 3


def test_group_peak_and_depth_normalisation():
    np.testing.assert_allclose(normalised_depth(5), [0, 0.25, 0.5, 0.75, 1.0])
    a = np.zeros((2, 5, 3))
    a[0, 2] = 1.0
    a[1, 2] = 0.8
    a[1, 4] = 0.9
    curves = layer_curves(a, how="median", subjects=["s1", "s2"])
    per = peak_layers(curves).set_index("subject")
    assert per.loc["s1", "peak_layer"] == 2 and per.loc["s2", "peak_layer"] == 4
    grp = peak_layers(curves, group_how="mean")
    assert grp["peak_layer"].tolist() == [2] and grp["peak_depth"].tolist() == [0.5]


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_subjects, n_layers, n_voxels"):
        layer_curves(np.zeros(5))
    with pytest.raises(ValueError, match="boolean over the 3 voxels"):
        layer_curves(np.zeros((2, 3)), {"x": np.ones(4, bool)})
    with pytest.raises(ValueError, match="how="):
        layer_curves(np.zeros((2, 3)), how="max")
