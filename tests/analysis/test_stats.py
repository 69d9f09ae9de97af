"""Statistics: calibrated block permutation, FDR/FWER, bootstrap, paired tests."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as ss
from statsmodels.stats.multitest import multipletests

from brainalign.analysis import metrics
from brainalign.analysis.stats import (
    block_permutations,
    bootstrap_ci,
    fdr_bh,
    fwer_max_statistic,
    mad,
    paired_test,
    permutation_test,
    sem,
)
from brainalign.testing.planted import _ar1

RUNS = np.repeat(np.arange(4), 150)


@pytest.fixture(scope="module")
def null_pair():
    rng = np.random.default_rng(1)
    yt = _ar1(rng, (600, 3000), RUNS, 0.5)
    yp = _ar1(rng, (600, 3000), RUNS, 0.5)
    return yt, yp


def test_block_permutation_is_calibrated_and_plain_shuffle_is_not(null_pair):
    yt, yp = null_pair
    _, p_block = permutation_test(yt, yp, RUNS, block_length=10, n_permutations=200, metric="r", seed=0)
    _, p_plain = permutation_test(yt, yp, RUNS, block_length=1, n_permutations=200, metric="r", seed=0)
    fp_block = np.mean(p_block < 0.05)
    fp_plain = np.mean(p_plain < 0.05)
    assert abs(fp_block - 0.05) <= 0.015, fp_block
    assert fp_plain > 0.065, fp_plain  # autocorrelation ignored -> anti-conservative


@pytest.mark.parametrize("metric", ["r", "r2", "cosine"])
def test_vectorised_null_matches_per_voxel_loop(metric):
    rng = np.random.default_rng(3)
    runs = np.repeat([0, 1, 2], [57, 60, 43])  # remainder blocks of unequal length
    yt = _ar1(rng, (160, 6), runs, 0.4) + 0.3
    yp = 0.4 * yt + _ar1(rng, (160, 6), runs, 0.4)
    n_perm, bl = 99, 7
    perms = block_permutations(runs, bl, n_perm, seed=5)
    f = getattr(metrics, {"r": "pearson_r", "r2": "r2_score", "cosine": "cosine_similarity"}[metric])
    obs = f(yt, yp)
    ref = np.empty(6)
    for v in range(6):  # the plain reference: one voxel, one permutation at a time
        null = np.array([f(yt[perm, v], yp[:, v])[0] for perm in perms])
        ref[v] = (1 + np.sum(null >= obs[v] - 1e-12)) / (1 + n_perm)
    for method in ("matmul", "gather"):
        scores, p = permutation_test(yt, yp, runs, bl, n_perm, metric, seed=5, method=method, dtype=np.float64)
        np.testing.assert_allclose(scores, obs, atol=1e-10)
        np.testing.assert_allclose(p, ref, atol=1e-12)
    # each permutation only moves samples within their run
    assert all(np.array_equal(runs[perm], runs) for perm in perms)


def test_fwer_is_max_statistic_and_not_below_uncorrected():
    rng = np.random.default_rng(4)
    yt = _ar1(rng, (600, 300), RUNS, 0.3)
    yp = _ar1(rng, (600, 300), RUNS, 0.3)
    yp[:, :20] += 0.5 * yt[:, :20]
    scores, p, p_fwer = permutation_test(yt, yp, RUNS, 10, 200, "r", seed=1, return_fwer=True)
    assert np.all(p_fwer >= p - 1e-12)
    assert np.all(p_fwer[:20] < 0.01)
    assert np.mean(p_fwer[20:] < 0.05) < 0.02
    # fwer_max_statistic against its definition
    max_null = rng.standard_normal(50)
    s = np.array([-3.0, 0.0, 0.5, 3.0, np.nan])
    ref = [(1 + np.sum(max_null >= x)) / 51 for x in s[:4]]
    np.testing.assert_allclose(fwer_max_statistic(s, max_null)[:4], ref)
    assert np.isnan(fwer_max_statistic(s, max_null)[4])


def test_fdr_matches_statsmodels_with_nans():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(40, 25)) ** 2
    p[3, 4] = np.nan
    reject, qv = fdr_bh(p, 0.05)
    ok = np.isfinite(p.ravel())
    ref_rej, ref_q, _, _ = multipletests(p.ravel()[ok], alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose(qv.ravel()[ok], ref_q, atol=1e-6)
    assert np.array_equal(reject.ravel()[ok], ref_rej)
    assert np.isnan(qv[3, 4]) and not reject[3, 4]


def test_fdr_controls_false_discovery_proportion_on_planted_mixture():
    fdp_bh, fdp_raw = [], []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        is_null = np.arange(2000) < 1600
        p = np.where(is_null, rng.uniform(size=2000), rng.beta(0.05, 1.0, size=2000))
        reject, _ = fdr_bh(p, q=0.05)
        fdp_bh.append(np.sum(reject & is_null) / max(reject.sum(), 1))
        raw = p < 0.05
        fdp_raw.append(np.sum(raw & is_null) / max(raw.sum(), 1))
    assert np.mean(fdp_bh) <= 0.05
    assert np.mean(fdp_raw) > 0.05  # without correction the planted nulls leak in


def test_fdr_on_block_permutation_p_values():
    rng = np.random.default_rng(7)
    yt = _ar1(rng, (600, 2000), RUNS, 0.5)
    yp = _ar1(rng, (600, 2000), RUNS, 0.5)
    yp[:, :400] += 0.35 * yt[:, :400]
    _, p = permutation_test(yt, yp, RUNS, 10, 500, "r", seed=2)
    reject, _ = fdr_bh(p, 0.05)
    fdp = np.sum(reject[400:]) / max(reject.sum(), 1)
    assert fdp <= 0.05 and reject[:400].mean() > 0.9


@pytest.mark.parametrize("metric", ["r", "r2", "cosine"])
def test_bootstrap_from_block_sums_matches_direct_resampling(metric):
    rng = np.random.default_rng(8)
    runs = np.repeat([0, 1], [53, 47])
    yt = rng.standard_normal((100, 5)) + 0.2
    yp = 0.5 * yt + rng.standard_normal((100, 5))
    low, high, boot = bootstrap_ci(yt, yp, runs, block_length=10, n_bootstrap=50, metric=metric, seed=3)
    from brainalign.analysis.stats import block_indices

    blocks = block_indices(runs, 10)
    draws = np.random.default_rng(3).integers(0, len(blocks), size=(50, len(blocks)))
    f = getattr(metrics, {"r": "pearson_r", "r2": "r2_score", "cosine": "cosine_similarity"}[metric])
    for k in range(5):
        idx = np.concatenate([blocks[i] for i in draws[k]])
        np.testing.assert_allclose(boot[k], f(yt[idx], yp[idx]), atol=1e-9)
    np.testing.assert_allclose(low, np.quantile(boot, 0.025, axis=0))
    assert np.all(low <= high)


def test_bootstrap_ci_covers_planted_correlation():
    rng = np.random.default_rng(9)
    runs = np.repeat(np.arange(4), 150)
    z = rng.standard_normal((600, 400))
    yp = rng.standard_normal((600, 400))
    yt = 0.5 * yp + np.sqrt(0.75) * z  # population r = 0.5
    low, high, _ = bootstrap_ci(yt, yp, runs, 10, 300, "r", 0.9, seed=1)
    coverage = np.mean((low <= 0.5) & (high >= 0.5))
    assert 0.84 <= coverage <= 0.96


def test_paired_tests_match_scipy_and_effect_sizes():
    rng = np.random.default_rng(10)
    a = rng.standard_normal((8, 3)) + np.array([0.0, 0.5, 2.0])
    b = rng.standard_normal((8, 3))
    t = paired_test(a, b, test="t", names=["x", "y", "z"])
    ref = ss.ttest_rel(a, b, axis=0)
    np.testing.assert_allclose(t["statistic"], ref.statistic, atol=1e-6)
    np.testing.assert_allclose(t["p_value"], ref.pvalue, atol=1e-6)
    np.testing.assert_allclose(t["effect_size"] * np.sqrt(8), ref.statistic, atol=1e-6)  # d_z = t / sqrt(n)
    w = paired_test(a, b, test="wilcoxon", alternative="greater")
    for k in range(3):
        r = ss.wilcoxon(a[:, k], b[:, k], alternative="greater")
        assert w["p_value"][k] == pytest.approx(r.pvalue, abs=1e-6)
    d = a - b
    ranks = ss.rankdata(np.abs(d), axis=0)
    rb = ((ranks * (d > 0)).sum(0) - (ranks * (d < 0)).sum(0)) / ranks.sum(0)
    np.testing.assert_allclose(w["effect_size"], rb, atol=1e-12)
    assert paired_test(np.arange(5.0) + 10, np.arange(5.0))["effect_size"][0] == 1.0


def test_mad_and_sem_match_scipy():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((12, 4))
    np.testing.assert_allclose(mad(x), ss.median_abs_deviation(x, axis=0), atol=1e-12)
    np.testing.assert_allclose(sem(x), ss.sem(x, axis=0), atol=1e-12)
    x[0, 0] = np.nan
    np.testing.assert_allclose(sem(x)[0], ss.sem(x[1:, 0]), atol=1e-12)


def test_bad_inputs_are_rejected_with_a_fix():
    y = np.zeros((20, 3))
    with pytest.raises(ValueError, match="same shape"):
        permutation_test(y, np.zeros((20, 4)), None, 5, 10)
    with pytest.raises(ValueError, match="one run label per test sample"):
        permutation_test(y, y, np.zeros(19), 5, 10)
    with pytest.raises(ValueError, match="metric"):
        permutation_test(y, y, None, 5, 10, metric="mse")
    with pytest.raises(ValueError, match="shorter block_length"):
        permutation_test(y, y, None, 20, 10)
    with pytest.raises(ValueError, match="block_length must be a positive integer"):
        permutation_test(y, y, None, 0, 10)
    with pytest.raises(ValueError, match="q must be"):
        fdr_bh([0.1], q=5)
    with pytest.raises(ValueError, match="pair them"):
        paired_test(np.zeros(3), np.zeros(4))
