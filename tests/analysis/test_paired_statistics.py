"""paired_statistics, the one paired comparison every table uses, against scipy and numpy computed by hand.

Written from the mutation run (benchmarks/README.md): every statistic, each alternative, both NaN policies and the
edge cases (one or two units, zero spread, all differences zero) are pinned here, with the error messages.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as ss

from brainalign.analysis.stats import paired_statistics

KEYS = {"n", "mean_diff", "median_diff", "sd_diff", "sem_diff", "mad_diff", "n_better", "cohen_dz", "t", "p_t", "w",
        "p_wilcoxon", "rank_biserial"}


def _reference(d, alternative):
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    sd = d.std(ddof=1)
    t = ss.ttest_rel(d, np.zeros(n), alternative=alternative)
    w = ss.wilcoxon(d, alternative=alternative)
    nz = d[d != 0]
    r = ss.rankdata(np.abs(nz))
    plus, minus = r[nz > 0].sum(), r[nz < 0].sum()
    return dict(n=n, mean_diff=d.mean(), median_diff=np.median(d), sd_diff=sd, sem_diff=sd / np.sqrt(n),
                mad_diff=np.median(np.abs(d - np.median(d))), n_better=int((d > 0).sum()), cohen_dz=d.mean() / sd,
                t=t.statistic, p_t=t.pvalue, w=w.statistic, p_wilcoxon=w.pvalue,
                rank_biserial=(plus - minus) / (plus + minus))


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_every_statistic_matches_scipy_and_numpy(alternative):
    rng = np.random.default_rng(3)
    a = rng.normal(0.3, 1.0, 12)
    b = rng.normal(0.0, 1.0, 12)
    b[4] = a[4]  # one tie: Wilcoxon drops it, the mean and t keep it
    got = paired_statistics(a, b, alternative=alternative)
    assert set(got) == KEYS
    ref = _reference(a - b, alternative)
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k
    assert isinstance(got["n"], int) and isinstance(got["n_better"], int)


def test_the_alternatives_differ_in_the_right_direction():
    a = np.arange(8, dtype=float) + 1.0
    b = np.zeros(8)
    two, greater, less = (paired_statistics(a, b, alternative=x) for x in ("two-sided", "greater", "less"))
    assert greater["p_t"] < two["p_t"] < less["p_t"]
    assert greater["p_wilcoxon"] < two["p_wilcoxon"] < less["p_wilcoxon"]
    assert greater["rank_biserial"] == 1.0 and greater["n_better"] == 8


def test_nan_pairs_are_omitted_or_propagated():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 3.0])
    b = np.array([0.0, 0.5, 1.0, np.inf, 1.0, 1.0])
    omit = paired_statistics(a, b)
    keep = np.isfinite(a - b)
    ref = _reference((a - b)[keep], "two-sided")
    assert omit["n"] == keep.sum() == 4
    for k, v in ref.items():
        assert omit[k] == pytest.approx(v, rel=1e-12), k
    prop = paired_statistics(a, b, nan_policy="propagate")
    assert prop["n"] == 6 and prop["n_better"] == 4  # comparisons with NaN are False
    assert set(prop) == KEYS
    assert all(np.isnan(prop[k]) for k in KEYS - {"n", "n_better"})


def test_edge_cases_give_nan_where_a_statistic_is_undefined():
    one = paired_statistics([2.0], [1.0])
    assert one["n"] == 1 and one["mean_diff"] == 1.0 and one["median_diff"] == 1.0 and one["mad_diff"] == 0.0
    assert one["n_better"] == 1
    assert all(np.isnan(one[k]) for k in ("sd_diff", "sem_diff", "cohen_dz", "t", "p_t", "w", "p_wilcoxon"))
    two = paired_statistics([2.0, 4.0], [1.0, 1.0])  # two units: every test is defined
    assert two["n"] == 2 and np.isfinite(two["p_t"]) and np.isfinite(two["p_wilcoxon"])
    assert two["sd_diff"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    flat = paired_statistics([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])  # constant non-zero difference: no spread for t
    assert flat["mean_diff"] == 1.0 and flat["sd_diff"] == 0.0 and flat["sem_diff"] == 0.0
    assert np.isnan(flat["t"]) and np.isnan(flat["p_t"]) and np.isnan(flat["cohen_dz"])
    assert np.isfinite(flat["p_wilcoxon"]) and flat["rank_biserial"] == 1.0
    zero = paired_statistics(np.ones(4), np.ones(4))  # all differences zero: Wilcoxon undefined
    assert zero["n_better"] == 0 and np.isnan(zero["w"]) and np.isnan(zero["rank_biserial"])
    empty = paired_statistics([np.nan], [1.0])
    assert empty["n"] == 0 and all(np.isnan(empty[k]) for k in ("mean_diff", "median_diff", "mad_diff"))


def test_bad_arguments_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match=r"a has shape \(3,\) and b has shape \(4,\); pair them unit by unit"):
        paired_statistics(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="two 1-D arrays"):
        paired_statistics(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"alternative='up'; use 'two-sided', 'greater' or 'less'"):
        paired_statistics(np.ones(3), np.ones(3), alternative="up")
    with pytest.raises(ValueError, match=r"nan_policy='raise'; use 'omit' or 'propagate'"):
        paired_statistics(np.ones(3), np.ones(3), nan_policy="raise")
