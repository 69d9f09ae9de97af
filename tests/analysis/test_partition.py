"""Variance partitioning recovers planted shared/unique fractions; dominance and VIF."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.outliers_influence import variance_inflation_factor

from brainalign.analysis.partition import (
    _parts_from_subsets,
    dominance_analysis,
    feature_space_vif,
    partition_percentages,
    variance_partition,
)
from brainalign.testing.planted import planted_partition

ALPHAS = np.logspace(-1, 4, 12)


@pytest.fixture(scope="module", params=[("a", "b"), ("act", "rea", "vis")], ids=["2spaces", "3spaces"])
def fitted(request):
    sim = planted_partition(request.param, n_samples_per_run=300, n_latent=4, n_voxels=200, seed=1)
    df = variance_partition(sim.spaces, sim.Y, sim.runs, test_runs=[6, 7], alphas=ALPHAS, n_folds=3)
    return sim, df


def test_planted_fractions_recovered_within_2_points(fitted):
    sim, df = fitted
    inf = ~sim.null
    assert set(sim.fractions) <= set(df.columns)
    for part, truth in sim.fractions.items():
        err = np.median(df[part].to_numpy()[inf] - truth[inf])
        assert abs(err) < 0.02, (part, err)
    # null voxels: nothing to partition, joint R2 around zero (held out, may be negative)
    assert abs(np.median(df["r2_joint"].to_numpy()[sim.null])) < 0.02


def test_columns_and_parts_sum_to_joint(fitted):
    sim, df = fitted
    names = list(sim.spaces)
    parts = [c for c in df.columns if c.startswith(("unique_", "shared"))]
    assert len(parts) == 2 ** len(names) - 1
    np.testing.assert_allclose(df[parts].sum(axis=1), df["r2_joint"], atol=1e-10)
    if len(names) == 2:
        a, b = names
        np.testing.assert_allclose(df["shared"], df[f"r2_{a}"] + df[f"r2_{b}"] - df["r2_joint"], atol=1e-12)
        np.testing.assert_allclose(df[f"unique_{a}"], df["r2_joint"] - df[f"r2_{b}"], atol=1e-12)
    assert len(df.attrs[f"alphas_{names[0]}"]) == len(df)


def test_three_space_parts_match_textbook_formulas():
    rng = np.random.default_rng(0)
    names = ("a", "b", "c")
    r2 = {S: rng.uniform(size=5) for k in (1, 2, 3) for S in combinations(names, k)}
    p = _parts_from_subsets(r2, names)
    A, B, C = r2[("a",)], r2[("b",)], r2[("c",)]
    AB, AC, BC, ABC = r2[("a", "b")], r2[("a", "c")], r2[("b", "c")], r2[names]
    np.testing.assert_allclose(p["unique_a"], ABC - BC)
    np.testing.assert_allclose(p["shared_a_b"], AC + BC - C - ABC)
    np.testing.assert_allclose(p["shared_a_b_c"], A + B + C - AB - AC - BC + ABC)


def test_negative_unique_part_is_kept():
    # a wide pure-noise second space: adding it to the joint model hurts held-out R2
    rng = np.random.default_rng(2)
    runs = np.repeat(np.arange(4), 40)
    a = rng.standard_normal((160, 3))
    Y = a @ rng.standard_normal((3, 50)) + 2 * rng.standard_normal((160, 50))
    junk = rng.standard_normal((160, 100))
    df = variance_partition({"a": a, "junk": junk}, Y, runs, test_runs=3, alphas=[1e-2, 1e-1], n_folds=3)
    assert (df["unique_junk"] < 0).mean() > 0.5


def test_roi_percentages_both_ways_labelled():
    table = pd.DataFrame({"r2_joint": [0.2, 0.4, -0.1, 0.1], "unique_a": [0.1, 0.1, 0.0, 0.05],
                          "unique_b": [0.05, 0.1, -0.1, 0.0], "shared": [0.05, 0.2, 0.0, 0.05]})
    out = partition_percentages(table, {"roi1": np.array([True, True, True, False]), "roi2": [3]})
    got = out.set_index(["roi", "part", "aggregation"])["percent"]
    assert got["roi1", "unique_a", "mean_of_ratios"] == pytest.approx(100 * (0.5 + 0.25) / 2)
    assert got["roi1", "unique_a", "ratio_of_means"] == pytest.approx(100 * 0.1 / 0.3)
    assert got["roi2", "shared", "ratio_of_means"] == pytest.approx(50.0)
    assert (out.loc[out.roi == "roi1", "n_voxels"] == 2).all()  # the negative-joint voxel is left out


def test_dominance_sums_to_joint_and_follows_planted_unique(fitted):
    sim, df = fitted
    names = list(sim.spaces)
    dom = dominance_analysis(df)
    cols = [f"dominance_{n}" for n in names]
    np.testing.assert_allclose(dom[cols].sum(axis=1), df["r2_joint"], atol=1e-10)
    if len(names) == 2:
        a, b = names
        np.testing.assert_allclose(dom[f"dominance_{a}"], df[f"unique_{a}"] + df["shared"] / 2, atol=1e-12)
    # planted dominance: the same analysis on the planted subset R2 (sum of the parts each subset touches)
    planted = {"voxel": np.arange(len(df))}
    for k in range(1, len(names) + 1):
        for S in combinations(names, k):
            key = "r2_joint" if k == len(names) else "r2_" + "_".join(S)
            planted[key] = sum(f for part, f in sim.fractions.items() if _touches(part, S, names))
    planted = pd.DataFrame(planted)
    planted.attrs["spaces"] = names
    truth = dominance_analysis(planted)
    gap = np.sort(truth[cols].to_numpy(), axis=1)
    clear = (gap[:, -1] - gap[:, -2]) > 0.05
    assert clear.sum() > 20
    assert (dom.loc[clear, "dominant"] == truth.loc[clear, "dominant"]).mean() > 0.85


def _touches(part, S, names):
    if part == "shared":
        members = names
    else:
        members = part.split("_")[1:]
    return any(m in S for m in members)


def test_vif_matches_statsmodels_and_detects_shared_latent():
    rng = np.random.default_rng(3)
    shared = rng.standard_normal((300, 3))
    a = np.hstack([shared, rng.standard_normal((300, 3))]) @ rng.standard_normal((6, 8))
    b = np.hstack([shared + 0.1 * rng.standard_normal((300, 3)), rng.standard_normal((300, 3))]) @ rng.standard_normal((6, 8))
    c = rng.standard_normal((300, 5))
    out = feature_space_vif({"a": a, "b": b, "c": c}, n_components=4)
    from sklearn.decomposition import PCA

    Z = np.hstack([PCA(4).fit_transform(x) for x in (a, b, c)])
    ref = [variance_inflation_factor(Z, j) for j in range(Z.shape[1])]
    np.testing.assert_allclose(out["vif"], ref, rtol=1e-6)
    assert out.loc[out.space == "c", "vif"].max() < 1.2
    assert out.loc[out.space == "a", "vif"].max() > 3  # a and b share a latent block


def test_banded_ridge_variant_agrees():
    sim = planted_partition(("a", "b"), n_samples_per_run=300, n_latent=4, n_voxels=40, seed=1)
    df = variance_partition(sim.spaces, sim.Y, sim.runs, [6, 7], ALPHAS, 3, method="banded")
    inf = ~sim.null
    for part, truth in sim.fractions.items():
        assert abs(np.median(df[part].to_numpy()[inf] - truth[inf])) < 0.03
    assert df.attrs["method"] == "banded"


def test_delays_are_applied_within_runs():
    rng = np.random.default_rng(4)
    runs = np.repeat(np.arange(5), 80)
    a, b = rng.standard_normal((400, 3)), rng.standard_normal((400, 3))
    shifted = np.vstack([np.zeros((2, 3)), a[:-2]])
    shifted[np.isin(np.arange(400), [80, 81, 160, 161, 240, 241, 320, 321])] = 0
    Y = shifted @ rng.standard_normal((3, 20)) + 0.5 * rng.standard_normal((400, 20))
    no = variance_partition({"a": a, "b": b}, Y, runs, 4, ALPHAS, 3)
    yes = variance_partition({"a": a, "b": b}, Y, runs, 4, ALPHAS, 3, delays=[1, 2, 3])
    assert no["r2_a"].median() < 0.05 < 0.5 < yes["r2_a"].median()


def test_bad_inputs_name_argument_and_fix():
    rng = np.random.default_rng(5)
    runs = np.repeat(np.arange(3), 20)
    a, b, Y = rng.standard_normal((60, 2)), rng.standard_normal((60, 2)), rng.standard_normal((60, 4))
    with pytest.raises(ValueError, match=r"spaces\['b'\] has shape \(59, 2\)"):
        variance_partition({"a": a, "b": b[:59]}, Y, runs, 2, ALPHAS, 2)
    with pytest.raises(ValueError, match="zero variance"):
        variance_partition({"a": a, "b": np.ones((60, 2))}, Y, runs, 2, ALPHAS, 2)
    with pytest.raises(ValueError, match="at least 2 training runs"):
        variance_partition({"a": a, "b": b}, Y, runs, [1, 2], ALPHAS, 2)
    with pytest.raises(ValueError, match="n_folds"):
        variance_partition({"a": a, "b": b}, Y, runs, 2, ALPHAS, 3)
    with pytest.raises(ValueError, match="2 or 3 spaces"):
        variance_partition({"a": a}, Y, runs, 2, ALPHAS, 2)
    with pytest.raises(ValueError, match="identifier"):
        variance_partition({"a": a, "b-2": b}, Y, runs, 2, ALPHAS, 2)
    with pytest.raises(ValueError, match="do not exist"):
        variance_partition({"a": a, "b": b}, Y, runs, 7, ALPHAS, 2)


def test_signed_r2_convention_is_recorded_and_close_to_r2_on_clean_data():
    sim = planted_partition(("a", "b"), n_samples_per_run=300, n_latent=4, n_voxels=60, seed=4)
    r2 = variance_partition(sim.spaces, sim.Y, sim.runs, [6, 7], ALPHAS, 3)
    sr2 = variance_partition(sim.spaces, sim.Y, sim.runs, [6, 7], ALPHAS, 3, score="signed_r2")
    assert r2.attrs["score"] == "r2" and sr2.attrs["score"] == "signed_r2"
    inf = ~sim.null
    # with well-calibrated predictions r^2 ~ R^2, so both conventions recover the planted parts
    assert abs(np.median(sr2["shared"].to_numpy()[inf] - sim.fractions["shared"][inf])) < 0.03
    assert np.all(np.abs(sr2["r2_joint"]) <= 1)


def test_encoding_permutation_fdr_end_to_end():
    """Encode, test every voxel by block permutation, control FDR: informative voxels are found."""
    from brainalign.encoding.fit_predict import ridge_fit_predict
    from brainalign.analysis.stats import fdr_bh, permutation_test
    from brainalign.encoding.splits import leave_runs_out, train_test_by_runs
    from brainalign.testing.planted import planted_encoding

    sim = planted_encoding(n_runs=6, n_samples_per_run=100, n_voxels=400, r2=0.15, autocorrelation=0.5, seed=5)
    train, test = train_test_by_runs(sim.runs, [4, 5])
    folds = leave_runs_out(sim.runs[train], 4)
    pred, _ = ridge_fit_predict(sim.X[train], sim.Y[train], sim.X[test], ALPHAS, folds)
    _, p = permutation_test(sim.Y[test], pred, sim.runs[test], 10, 500, "r", seed=0)
    reject, _ = fdr_bh(p, 0.05)
    fdp = np.sum(reject & ~sim.informative) / max(reject.sum(), 1)
    assert fdp <= 0.05 and reject[sim.informative].mean() > 0.8
