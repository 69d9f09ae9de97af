"""Noise ceilings recover what the simulator planted."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.analysis.ceiling import (
    explainable_variance,
    extrapolate_ceiling,
    inter_subject_predictivity,
    ncsnr,
    ncsnr_noise_ceiling,
    normalisation_convention,
    normalise_scores,
    subject_subset_ceiling,
)
from brainalign.testing.planted import planted_subjects


def _planted_curve(seed=0, n_vox=30):
    rng = np.random.default_rng(seed)
    x = np.repeat(np.arange(1, 6), 5).astype(float)
    v0 = rng.uniform(0.2, 0.8, n_vox)
    tau = rng.uniform(0.5, 2.0, n_vox)
    r = v0 * (1 - np.exp(-x[:, None] / tau)) + 0.02 * rng.standard_normal((x.size, n_vox))
    return x, r, v0


def test_extrapolation_recovers_planted_v0_within_003():
    x, r, v0 = _planted_curve()
    fit = extrapolate_ceiling(x, r, n_bootstrap=100, seed=42)
    assert np.all(np.abs(fit["v0"] - v0) < 0.03)
    assert not fit["fallback"].any()
    assert np.all((fit["v0_low"] <= fit["v0"]) & (fit["v0"] <= fit["v0_high"]))


def test_profile_method_matches_curve_fit():
    x, r, _ = _planted_curve(seed=1, n_vox=4)
    r[[3, 12], 0] = np.nan  # a missing point drops out of that voxel's fit only
    a = extrapolate_ceiling(x, r, n_bootstrap=15, seed=3, method="profile")
    b = extrapolate_ceiling(x, r, n_bootstrap=15, seed=3, method="curve_fit")
    np.testing.assert_allclose(a["v0"], b["v0"], atol=5e-3)
    # same seed -> same bootstrap -> same answer
    np.testing.assert_array_equal(a["v0"], extrapolate_ceiling(x, r, 15, seed=3)["v0"])


def test_v0_is_bounded_and_fallback_used_when_no_fit():
    x = np.array([1.0, 2, 3, 4])
    r = np.column_stack([[1.2, 1.4, 1.5, 1.55], [np.nan] * 4, [-0.1, -0.2, -0.1, -0.2]])
    fit = extrapolate_ceiling(x, r, n_bootstrap=20)
    assert fit["v0"][0] == pytest.approx(1.0)  # bounded to [0, 1]
    assert fit["v0"][2] == pytest.approx(0.0)
    assert fit["fallback"].tolist() == [False, True, False]


def test_inter_subject_ceiling_end_to_end_recovers_planted_ceiling():
    sim = planted_subjects(n_subjects=5, n_voxels=60, n_latent=4, n_samples_per_run=300, seed=0)
    pts = inter_subject_predictivity(sim.responses, sim.runs, [5], target=0, max_combinations=4, seed=0)
    assert set(pts["n_sources"]) == {1, 2, 3, 4}
    assert pts.groupby("n_sources")["sources"].nunique().max() <= 4  # seeded sample of subsets
    wide = pts.pivot_table(index=["n_sources", "sources"], columns="voxel", values="r")
    fit = extrapolate_ceiling(wide.index.get_level_values("n_sources").to_numpy(), wide.to_numpy(), 100)
    err = fit["v0"].to_numpy() - sim.ceiling_r
    assert abs(np.median(err)) < 0.03
    # the ceiling is above what any finite subset reached
    assert np.median(fit["v0"]) >= np.median(wide.to_numpy(), axis=None)


def test_subject_subset_ceiling_table():
    sim = planted_subjects(n_subjects=3, n_voxels=6, n_samples_per_run=60, n_runs=4, seed=1)
    table = subject_subset_ceiling(sim.responses, sim.runs, [3], n_folds=2, n_bootstrap=20)
    assert list(table.columns[:3]) == ["subject", "voxel", "v0"] and len(table) == 18
    assert table["v0"].between(0, 1).all()


def test_explainable_variance_and_ncsnr_recover_signal_fraction():
    sim = planted_subjects(n_subjects=2, n_voxels=200, n_samples_per_run=500, n_runs=2, n_repeats=4, seed=2)
    f = sim.signal_fraction
    ev = explainable_variance(sim.repeats)
    assert np.median(np.abs(ev - f)) < 0.02
    ev_raw = explainable_variance(sim.repeats, bias_correction=False)
    assert np.median(ev_raw - f) > 0.05  # uncorrected EV of the repeat mean is inflated by noise
    snr = ncsnr(sim.repeats)
    np.testing.assert_allclose(np.median(snr**2 / (f / (1 - f))), 1.0, atol=0.05)
    nc = ncsnr_noise_ceiling(snr, n_averaged=4)
    expected = f / (f + (1 - f) / 4)
    assert np.median(np.abs(nc - expected)) < 0.02
    # per-stimulus repeat counts: NSD's mixture formula
    np.testing.assert_allclose(ncsnr_noise_ceiling([1.0], [1, 3]), 1 / (1 + (1 + 1 / 3) / 2))


def test_ncsnr_with_missing_repeats():
    rng = np.random.default_rng(0)
    b = rng.standard_normal((3, 50, 4))
    b[2, :10] = np.nan
    out = ncsnr(b)
    assert out.shape == (4,) and np.all(np.isfinite(out))


def test_normalise_threshold_and_clip():
    scores = np.array([0.2, 0.3, 0.1, -0.05, 0.5])
    ceiling = np.array([0.4, 0.2, 0.04, 0.5, np.nan])
    out = normalise_scores(scores, ceiling)
    np.testing.assert_allclose(out[:2], [0.5, 1.5])
    assert np.isnan(out[2]) and np.isnan(out[4])
    clipped = normalise_scores(scores, ceiling, clip=True)
    np.testing.assert_allclose(clipped[[0, 1, 3]], [0.5, 1.0, 0.0])
    assert "0.05" in normalisation_convention() and "not clipped" in normalisation_convention()
    assert "clipped to [0, 1]" in normalisation_convention(clip=True)


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_repeats >= 2"):
        explainable_variance(np.zeros((1, 10, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        subject_subset_ceiling([np.zeros((10, 2))], np.zeros(10), 0)
    with pytest.raises(ValueError, match=r"responses\[1\] has shape"):
        inter_subject_predictivity([np.zeros((10, 2)), np.zeros((9, 2))], np.zeros(10), 0, 0)
    runs = np.repeat([0, 1], 10)
    with pytest.raises(ValueError, match="training run"):
        inter_subject_predictivity([np.ones((20, 2)), np.ones((20, 2))], runs, [1], 0)
    with pytest.raises(ValueError, match="broadcast"):
        normalise_scores(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="distinct"):
        extrapolate_ceiling([2, 2, 2], np.zeros((3, 1)))
