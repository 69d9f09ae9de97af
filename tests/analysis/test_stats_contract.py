"""The statistics' documented contract at its edges: defaults, boundaries, exact small cases, the two null
algorithms against each other, and the error messages (written from the mutation run, benchmarks/README.md)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainalign.analysis.stats import bootstrap_ci, fdr_bh, fwer_max_statistic, permutation_test
from brainalign.testing.planted import _ar1

RUNS = np.repeat(np.arange(3), 40)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(11)
    yt = _ar1(rng, (RUNS.size, 40), RUNS, 0.4)
    yp = 0.3 * yt + _ar1(rng, (RUNS.size, 40), RUNS, 0.4)
    yp[:, :10] = _ar1(rng, (RUNS.size, 10), RUNS, 0.4)  # some null voxels
    return yt, yp


def test_documented_defaults(pair):
    yt, yp = pair
    default = permutation_test(yt, yp, RUNS)
    explicit = permutation_test(yt, yp, RUNS, block_length=10, n_permutations=1000, metric="r", seed=0)
    np.testing.assert_array_equal(default[1], explicit[1])
    assert len(default) == 2  # return_fwer defaults to False
    other = permutation_test(yt, yp, RUNS, block_length=10, n_permutations=1000, metric="r", seed=1)
    assert not np.array_equal(default[1], other[1])  # the seed matters, so the default seed is pinned above


@pytest.mark.parametrize("metric", ["r", "r2", "cosine"])
def test_matmul_and_gather_give_the_same_null(pair, metric):
    yt, yp = pair
    kw = dict(block_length=8, n_permutations=200, metric=metric, seed=2, return_fwer=True, dtype=np.float64)
    mm = permutation_test(yt, yp, RUNS, method="matmul", **kw)
    ga = permutation_test(yt, yp, RUNS, method="gather", **kw)
    au = permutation_test(yt, yp, RUNS, method="auto", voxel_batch=7, **kw)  # batches that do not divide 40
    for x, y, z in zip(mm, ga, au):
        np.testing.assert_allclose(x, y, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(x, z, rtol=1e-12, equal_nan=True)
    scores, p, p_fwer = mm
    assert scores.dtype == np.float64 and np.all(p_fwer >= p)
    assert np.all((p >= 1 / 201) & (p <= 1))


def test_one_permutation_is_allowed_and_zero_is_not(pair):
    yt, yp = pair
    _, p = permutation_test(yt, yp, RUNS, 10, 1)
    assert set(np.unique(p)) <= {0.5, 1.0}  # (1 + 0 or 1) / (1 + 1)
    with pytest.raises(ValueError, match=r"n_permutations must be >= 1, got 0\."):
        permutation_test(yt, yp, RUNS, 10, 0)
    with pytest.raises(ValueError, match=r"method='fast'; use 'auto', 'matmul' or 'gather'\."):
        permutation_test(yt, yp, RUNS, 10, 5, method="fast")


def test_constant_voxel_scores_nan_and_p_nan():
    rng = np.random.default_rng(0)
    yt = rng.standard_normal((60, 3))
    yt[:, 1] = 2.0
    scores, p = permutation_test(yt, rng.standard_normal((60, 3)), None, 5, 50)
    assert np.isnan(scores[1]) and np.isnan(p[1]) and np.isfinite(p[[0, 2]]).all()


def test_fwer_by_hand():
    p = fwer_max_statistic([0.5, 0.1, np.nan, 0.4], [0.2, 0.6, 0.4])
    np.testing.assert_allclose(p, [2 / 4, 4 / 4, np.nan, 3 / 4])  # ties count as >=
    with pytest.raises(ValueError, match="max_null is empty; pass the per-permutation maxima"):
        fwer_max_statistic([0.1], [])


def test_fdr_edges():
    reject, q = fdr_bh([0.01, np.nan, 0.04, 0.03], q=0.05)
    assert np.isnan(q[1]) and not reject[1]
    np.testing.assert_allclose(q[[0, 2, 3]], [0.03, 0.04, 0.04])
    assert reject[[0, 2, 3]].all()
    none = fdr_bh([np.nan, np.nan])
    assert not none[0].any() and np.isnan(none[1]).all()
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"q must be in \(0, 1\)"):
            fdr_bh([0.1], q=bad)
    for bad in ([1.2], [-0.1]):
        with pytest.raises(ValueError, match=r"p_values must lie in \[0, 1\]"):
            fdr_bh(bad)
    shaped = fdr_bh(np.full((2, 3), 0.01))
    assert shaped[0].shape == shaped[1].shape == (2, 3)


def test_bootstrap_edges(pair):
    yt, yp = pair
    low, high, boot = bootstrap_ci(yt, yp, RUNS, block_length=10, n_bootstrap=300, seed=4)
    assert boot.shape == (300, 40) and np.all(low <= high)
    np.testing.assert_allclose(low, np.nanquantile(boot, 0.025, axis=0))
    np.testing.assert_allclose(high, np.nanquantile(boot, 0.975, axis=0))
    narrow = bootstrap_ci(yt, yp, RUNS, block_length=10, n_bootstrap=300, seed=4, ci=0.5)
    assert np.all(narrow[0] >= low) and np.all(narrow[1] <= high)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"ci must be in \(0, 1\)"):
            bootstrap_ci(yt, yp, RUNS, ci=bad)
    with pytest.raises(ValueError, match="gives fewer than 2 blocks; use shorter blocks"):
        bootstrap_ci(yt[:10], yp[:10], None, block_length=10)


# ----------------------------------------------------------------- second round (mutation run of 2026-12-07, issue 21)
def test_paired_test_frame_matches_scipy_column_by_column():
    from scipy import stats as ss

    from brainalign.analysis.stats import paired_test

    rng = np.random.default_rng(12)
    a = rng.standard_normal((9, 3)) + [0.0, 0.4, 1.5]
    b = rng.standard_normal((9, 3))
    a[2, 1] = np.nan  # a missing subject in one column: omitted there only
    cols = ["comparison", "test", "n", "mean_diff", "median_diff", "statistic", "p_value", "effect_size",
            "effect_size_name"]
    w = paired_test(a, b, names=[10, "V1", "FFA"])
    assert list(w.columns) == cols
    assert list(w["comparison"]) == ["10", "V1", "FFA"] and set(w["test"]) == {"wilcoxon"}
    assert list(w["n"]) == [9, 8, 9] and set(w["effect_size_name"]) == {"rank_biserial"}
    t = paired_test(a, b, test="t")
    assert list(t.columns) == cols and list(t["comparison"]) == ["0", "1", "2"]
    assert set(t["test"]) == {"t"} and set(t["effect_size_name"]) == {"cohen_dz"}
    for k in range(3):
        ok = np.isfinite(a[:, k])
        d = a[ok, k] - b[ok, k]
        assert w["statistic"][k] == pytest.approx(ss.wilcoxon(d).statistic, rel=1e-12)
        assert w["mean_diff"][k] == pytest.approx(d.mean(), rel=1e-12)
        assert w["median_diff"][k] == pytest.approx(np.median(d), rel=1e-12)
        assert t["statistic"][k] == pytest.approx(ss.ttest_rel(a[ok, k], b[ok, k]).statistic, rel=1e-12)
        assert t["effect_size"][k] == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)


def test_paired_test_boundaries_and_messages():
    from brainalign.analysis.stats import paired_test

    two = paired_test([1.0, 3.0], [0.0, 1.0], test="t")  # two subjects are enough
    assert two["n"][0] == 2 and np.isfinite(two["p_value"][0])
    with pytest.raises(ValueError, match=r"^need at least 2 subjects for a paired test, got 1\.$"):
        paired_test(np.ones((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"^a and b must be \(n_subjects,\) or \(n_subjects, n_comparisons\), "
                                         r"got \(2, 2, 2\)\.$"):
        paired_test(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"^test='z'; use 'wilcoxon' or 't'\.$"):
        paired_test(np.ones(3), np.ones(3), test="z")
    with pytest.raises(ValueError, match=r"^names has 2 entries but there are 3 columns\.$"):
        paired_test(np.ones((4, 3)), np.ones((4, 3)), names=["a", "b"])
    with pytest.raises(ValueError, match=r"^a has shape \(3,\) but b has shape \(4,\); pair them subject by "
                                         r"subject\.$"):
        paired_test(np.ones(3), np.ones(4))


def test_paired_statistics_differences_unsigned_inputs_as_signed():
    from brainalign.analysis.stats import paired_statistics

    s = paired_statistics(np.array([1, 5, 2, 7], dtype=np.uint8), np.array([2, 3, 4, 1], dtype=np.uint8))
    assert s["mean_diff"] == pytest.approx(np.mean([-1, 2, -2, 6])) and s["n_better"] == 2


def test_paired_statistics_two_units_and_silent_edge_cases():
    from brainalign.analysis.stats import paired_statistics

    two = paired_statistics([2.0, 5.0], [1.0, 1.0])
    assert two["sem_diff"] == pytest.approx(np.std([1.0, 4.0], ddof=1) / np.sqrt(2), rel=1e-12)
    assert two["cohen_dz"] == pytest.approx(2.5 / np.std([1.0, 4.0], ddof=1), rel=1e-12)
    prop = paired_statistics([1.0, 2.0, np.nan, 3.0], [1.0, 1.0, 0.0, 1.0], nan_policy="propagate")
    assert prop["n_better"] == 2  # a zero difference is not "better"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # undefined statistics are NaN without numpy's warnings
        one = paired_statistics([2.0], [1.0])
        empty = paired_statistics([np.nan], [1.0])
    assert np.isnan(one["sd_diff"]) and np.isnan(empty["mean_diff"]) and np.isnan(empty["mad_diff"])
    with pytest.raises(ValueError, match=r"^a has shape \(3,\) and b has shape \(4,\); pair them unit by unit as "
                                         r"two 1-D arrays of equal length\.$"):
        paired_statistics(np.ones(3), np.ones(4))


def test_bootstrap_defaults_two_blocks_and_constant_voxels(pair):
    yt, yp = pair
    default = bootstrap_ci(yt, yp, RUNS)
    explicit = bootstrap_ci(yt, yp, RUNS, block_length=10, n_bootstrap=1000, metric="r", ci=0.95, seed=0)
    assert default[2].shape == (1000, 40)
    for x, y in zip(default, explicit):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(default[2], bootstrap_ci(yt, yp, RUNS, seed=1)[2])
    low, high, boot = bootstrap_ci(yt[:20], yp[:20], None, block_length=10, n_bootstrap=50)  # exactly two blocks
    assert boot.shape == (50, 40) and np.all(low <= high)
    flat = np.zeros((30, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every resample undefined: NaN bounds, no warnings
        low, high, boot = bootstrap_ci(flat, yp[:30, :3], None, block_length=10, n_bootstrap=20)
    assert low.shape == high.shape == (3,) and low.dtype == high.dtype == np.float64
    assert np.isnan(low).all() and np.isnan(high).all() and np.isnan(boot).all()
    mixed = yt[:30, :3].copy()
    mixed[:, 1] = 0.0
    with np.errstate(all="raise"), warnings.catch_warnings():  # numpy's floating-point errors raise
        warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)  # nanquantile's, for the NaN column
        for metric in ("r", "r2", "cosine"):
            # r and cosine divide 0 by 0 on the constant voxel; R² divides its non-zero error by 0
            low, high, _ = bootstrap_ci(mixed, yp[:30, :3], None, 10, 20, metric=metric)
            assert np.isnan(low[1]) and np.isnan(high[1])


def test_fdr_bh_accepts_zero_and_uses_its_q():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.0, 0.02, 0.03, 0.06, 0.2, 0.5])
    for q in (0.05, 0.1, 0.25):
        reject, q_values = fdr_bh(p, q=q)
        ref_reject, ref_q, _, _ = multipletests(p, alpha=q, method="fdr_bh")
        np.testing.assert_array_equal(reject, ref_reject)
        np.testing.assert_allclose(q_values, ref_q, rtol=1e-12)
    assert fdr_bh(p, q=0.1)[0].sum() > fdr_bh(p, q=0.05)[0].sum()
    with pytest.raises(ValueError, match=r"^p_values must lie in \[0, 1\]; got values outside that range\.$"):
        fdr_bh([1.5])
    with pytest.raises(ValueError, match=r"^max_null is empty; pass the per-permutation maxima of the null\.$"):
        fwer_max_statistic([0.1], [])


def test_mad_and_sem_axes_scale_and_nans():
    from scipy import stats as ss

    from brainalign.analysis.stats import mad, sem

    rng = np.random.default_rng(13)
    x = rng.standard_normal((7, 5))
    np.testing.assert_allclose(mad(x, axis=1), ss.median_abs_deviation(x, axis=1), rtol=1e-12)
    assert mad(x, axis=None) == pytest.approx(ss.median_abs_deviation(x, axis=None), rel=1e-12)
    np.testing.assert_allclose(mad(x, scale="normal"), ss.median_abs_deviation(x, scale="normal"), rtol=1e-12)
    x[0, 0] = np.nan
    assert mad(x)[0] == pytest.approx(ss.median_abs_deviation(x[1:, 0]), rel=1e-12)
    np.testing.assert_allclose(sem(x, axis=1)[1:], ss.sem(x[1:], axis=1), rtol=1e-12)


def test_mad_and_sem_compute_float32_input_in_float64():
    from brainalign.analysis.stats import mad, sem

    x = np.random.default_rng(14).standard_normal((9, 4)).astype(np.float32) + 100.0  # float32 loses the spread
    ref = x.astype(np.float64)
    assert mad(x).dtype == np.float64 and sem(x).dtype == np.float64
    np.testing.assert_allclose(mad(x), mad(ref), rtol=1e-12)
    np.testing.assert_allclose(sem(x), sem(ref), rtol=1e-12)
