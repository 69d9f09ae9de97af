"""variance_partition and its tables against a reference built from the pieces (train-only z-scoring, centred Y,
ridge_fit_predict per subset), hand-computed percentages and dominance, and the messages of every refusal
(written from mutmut survivors)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.analysis.metrics import r2_score
from brainalign.analysis.partition import (
    dominance_analysis, feature_space_vif, part_columns, partition_percentages, variance_partition,
)

ALPHAS = [0.1, 10.0, 1e3]


def _data(n_runs=4, per_run=30, seed=0):
    rng = np.random.default_rng(seed)
    n = n_runs * per_run
    a, b = rng.standard_normal((n, 3)) * 2 + 1, rng.standard_normal((n, 2)) - 3
    Y = a @ rng.standard_normal((3, 5)) + b @ rng.standard_normal((2, 5)) + rng.standard_normal((n, 5)) + 7
    return {"a": a, "b": b}, Y, np.repeat(np.arange(n_runs), per_run)


def test_two_space_partition_equals_its_pieces():
    from brainalign.encoding.delays import zscore_with_train
    from brainalign.encoding.fit_predict import ridge_fit_predict
    from brainalign.encoding.splits import leave_runs_out, train_test_by_runs

    spaces, Y, runs = _data()
    df = variance_partition(spaces, Y, runs, 3, ALPHAS, 3)
    train, test = train_test_by_runs(runs, 3)
    Z = {k: zscore_with_train(v, train) for k, v in spaces.items()}
    mu = Y[train].mean(0)
    folds = leave_runs_out(runs[train], 3)
    ref = {}
    for key, X in (("a", Z["a"]), ("b", Z["b"]), ("joint", np.hstack([Z["a"], Z["b"]]))):
        pred, best = ridge_fit_predict(X[train], (Y - mu)[train].astype(np.float32), X[test], ALPHAS, folds)
        ref[key] = r2_score(Y[test], pred + mu)
        np.testing.assert_array_equal(df.attrs[f"alphas_{key}"], best)
    for key in ("a", "b", "joint"):
        np.testing.assert_allclose(df[f"r2_{key}"], ref[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(df["shared"], ref["a"] + ref["b"] - ref["joint"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(df["unique_a"], ref["joint"] - ref["b"], rtol=1e-5, atol=1e-6)
    assert list(df.columns) == ["voxel", "r2_a", "r2_b", "r2_joint", "unique_a", "unique_b", "shared"]
    assert df["voxel"].tolist() == list(range(5))
    assert df.attrs["spaces"] == ["a", "b"] and df.attrs["method"] == "ridge" and df.attrs["score"] == "r2"
    assert df.attrs["n_test"] == 30
    assert part_columns(["a", "b"]) == ["unique_a", "unique_b", "shared"]
    assert part_columns(["x", "y", "z"]) == ["unique_x", "unique_y", "unique_z", "shared_x_y", "shared_x_z",
                                             "shared_y_z", "shared_x_y_z"]


def test_defaults_are_the_documented_grid_and_five_folds():
    spaces, Y, runs = _data(n_runs=7, per_run=12)
    df = variance_partition(spaces, Y, runs, 6)
    ref = variance_partition(spaces, Y, runs, 6, np.logspace(-2, 5, 15), 5, None, method="ridge", score="r2", seed=0)
    pd.testing.assert_frame_equal(df, ref)
    other = variance_partition(spaces, Y, runs, 6, np.logspace(-2, 5, 15), 4)
    assert not df.equals(other)
    with pytest.raises(ValueError, match=r"^n_folds=5 but there are 4 training runs; choose 2 <= n_folds <= 4\.$"):
        variance_partition({k: v[:60] for k, v in spaces.items()}, Y[:60], runs[:60], 4)


def test_one_dimensional_y_and_spaces_are_columns():
    spaces, Y, runs = _data()
    one = variance_partition({"a": spaces["a"][:, 0], "b": spaces["b"]}, Y[:, 0], runs, 3, ALPHAS, 2)
    two = variance_partition({"a": spaces["a"][:, :1], "b": spaces["b"]}, Y[:, :1], runs, 3, ALPHAS, 2)
    assert len(one) == 1
    pd.testing.assert_frame_equal(one, two)


def test_banded_seed_and_signed_r2():
    spaces, Y, runs = _data()
    s0 = variance_partition(spaces, Y, runs, 3, ALPHAS, 3, method="banded")
    s0b = variance_partition(spaces, Y, runs, 3, ALPHAS, 3, method="banded", seed=0)
    pd.testing.assert_frame_equal(s0, s0b)
    s1 = variance_partition(spaces, Y, runs, 3, ALPHAS, 3, method="banded", seed=1)
    assert not np.array_equal(s0["r2_joint"], s1["r2_joint"])
    np.testing.assert_array_equal(s0["r2_a"], s1["r2_a"])  # one space: plain ridge, no random search
    sr = variance_partition(spaces, Y, runs, 3, ALPHAS, 3, score="signed_r2")
    r2 = variance_partition(spaces, Y, runs, 3, ALPHAS, 3)
    assert sr.attrs["score"] == "signed_r2" and (sr["r2_joint"] <= 1).all()
    assert (sr["r2_joint"] > r2["r2_joint"] - 0.05).all() and not np.array_equal(sr["r2_joint"], r2["r2_joint"])


@pytest.mark.parametrize("kw, match", [
    (dict(method="lasso"), r"^method='lasso'; use 'ridge' or 'banded'\.$"),
    (dict(score="r"), r"^score='r'; use 'r2' or 'signed_r2'\.$"),
])
def test_bad_method_or_score(kw, match):
    spaces, Y, runs = _data()
    with pytest.raises(ValueError, match=match):
        variance_partition(spaces, Y, runs, 3, ALPHAS, 2, **kw)


def test_check_spaces_messages():
    spaces, Y, runs = _data()
    a, b = spaces["a"], spaces["b"]
    cases = [
        (([("a", a), ("b", b)], Y, runs, 3, 2), r"^spaces must be a mapping \{name: array of shape \(n_samples, "),
        (({"a": a, "b": b, "c": a, "d": b}, Y, runs, 3, 2),
         r"^spaces has 4 entries \(\['a', 'b', 'c', 'd'\]\); variance_partition handles 2 or 3 spaces\.$"),
        (({"a": a, "joint": b}, Y, runs, 3, 2), r"^space name 'joint' cannot be a column name; use a Python identifier"),
        (({"a": a, 3: b}, Y, runs, 3, 2), r"^space name 3 cannot be a column name"),
        (({"a": a, "b": b}, Y[:, :, None], runs, 3, 2), r"^Y must be \(n_samples, n_voxels\), got shape \(120, 5, 1\)\.$"),
        (({"a": a, "b": b[:, :, None]}, Y, runs, 3, 2),
         r"^spaces\['b'\] has shape \(120, 2, 1\) but Y has 120 samples; every space must be \(n_samples=120, "
         r"n_features\)\.$"),
        (({"a": a, "b": b}, Y, runs[:-1], 3, 2), r"^runs has shape \(119,\); give one run label per sample \(120\)\.$"),
        (({"a": a, "b": b}, Y, runs, [1, 2, 3], 2),
         r"^only 1 training run \(\[0\]\) is left after holding out test_runs=\[1, 2, 3\]; alpha selection needs at "
         r"least 2 training runs\. Hold out fewer runs\.$"),
        (({"a": a, "b": b}, Y, runs, 3, 1), r"^n_folds=1 but there are 3 training runs; choose 2 <= n_folds <= 3\.$"),
        (({"a": np.where(np.arange(120)[:, None] == 5, np.nan, a), "b": b}, Y, runs, 3, 2),
         r"^spaces\['a'\] contains NaN or inf; impute or drop those samples first\.$"),
        (({"a": a, "b": np.ones_like(b)}, Y, runs, 3, 2),
         r"^spaces\['b'\] has zero variance on the training runs; it cannot explain anything\. Check the feature"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            variance_partition(*args[:4], ALPHAS, args[4])
    # constant on the training runs only: still refused; varying in one training column: accepted
    b2 = np.ones_like(b)
    b2[runs == 3] = 5.0
    with pytest.raises(ValueError, match="zero variance on the training runs"):
        variance_partition({"a": a, "b": b2}, Y, runs, 3, ALPHAS, 2)
    b3 = np.ones_like(b)
    b3[:, 1] = np.arange(120)
    assert len(variance_partition({"a": a, "b": b3}, Y, runs, 3, ALPHAS, 3)) == 5


def test_partition_percentages_by_hand():
    t = pd.DataFrame({"r2_joint": [0.5, 0.2, 0.0, -0.1, np.nan], "unique_a": [0.25, 0.1, 0.3, 0.1, 0.1],
                      "shared": [0.1, 0.1, 0.0, 0.0, 0.0], "other": [9.0] * 5})
    out = partition_percentages(t)
    assert out.columns.tolist() == ["roi", "part", "aggregation", "percent", "n_voxels"]
    got = {(r.part, r.aggregation): (r.percent, r.n_voxels) for r in out.itertuples()}
    assert set(out.roi) == {"all"} and len(out) == 4
    assert got[("unique_a", "mean_of_ratios")] == pytest.approx((100 * (0.5 + 0.5) / 2, 2))
    assert got[("unique_a", "ratio_of_means")] == pytest.approx((100 * 0.175 / 0.35, 2))
    assert got[("shared", "mean_of_ratios")] == pytest.approx((100 * (0.2 + 0.5) / 2, 2))
    assert got[("shared", "ratio_of_means")] == pytest.approx((100 * 0.1 / 0.35, 2))
    hi = partition_percentages(t, {"x": [0, 1], "y": np.array([False, True, True, False, False])}, min_r2_joint=0.3)
    assert hi[(hi.roi == "x") & (hi.part == "unique_a")].percent.tolist() == pytest.approx([50.0, 50.0])
    assert hi[hi.roi == "x"].n_voxels.tolist() == [1, 1, 1, 1]
    y = hi[hi.roi == "y"]
    assert y.percent.isna().all() and (y.n_voxels == 0).all()
    full_mask = partition_percentages(t, {"m": np.array([1, 1, 0, 0, 0])})  # a 0/1 mask of every voxel
    assert full_mask.n_voxels.tolist() == [2, 2, 2, 2]
    with pytest.raises(ValueError, match=r"^masks\['z'\] has shape \(2, 2\) but the table has 5 voxels; give a boolean"):
        partition_percentages(t, {"z": np.ones((2, 2), bool)})
    with pytest.raises(ValueError, match=r"^table has no 'r2_joint' column; pass the DataFrame returned by "):
        partition_percentages(t.drop(columns="r2_joint"))


def test_dominance_three_spaces_by_hand_and_without_attrs():
    t = pd.DataFrame({"r2_a": [0.3], "r2_b": [0.1], "r2_c": [0.0], "r2_a_b": [0.35], "r2_a_c": [0.3],
                      "r2_b_c": [0.1], "r2_joint": [0.4], "unique_a": [0], "unique_b": [0], "unique_c": [0]})
    dom = dominance_analysis(t)  # names from the unique_ columns
    # a: mean over sizes of mean increments: (0.3, mean(0.25, 0.3), 0.3)
    assert dom["dominance_a"].iloc[0] == pytest.approx(np.mean([0.3, np.mean([0.25, 0.3]), 0.3]))
    assert dom["dominance_b"].iloc[0] == pytest.approx(np.mean([0.1, np.mean([0.05, 0.1]), 0.1]))
    assert dom[["dominance_a", "dominance_b", "dominance_c"]].sum(axis=1).iloc[0] == pytest.approx(0.4)
    assert dom["dominant"].tolist() == ["a"] and dom["voxel"].tolist() == [0]
    t2 = pd.DataFrame({"voxel": [7, 9], "r2_x": [0.1, np.nan], "r2_y": [0.3, 0.2], "r2_joint": [0.35, 0.3]})
    t2.attrs["spaces"] = ["x", "y"]
    d2 = dominance_analysis(t2)
    assert d2["voxel"].tolist() == [7, 9] and d2["dominant"].iloc[0] == "y" and d2["dominant"].isna().iloc[1]
    assert d2["dominance_x"].iloc[0] == pytest.approx((0.1 + 0.05) / 2)
    with pytest.raises(ValueError, match=r"^table does not describe 2 or 3 spaces; pass the DataFrame returned by "):
        dominance_analysis(pd.DataFrame({"unique_a": [0.1], "r2_joint": [0.2]}))


def test_feature_space_vif_training_rows_components_and_messages():
    rng = np.random.default_rng(7)
    a, c = rng.standard_normal((40, 6)), rng.standard_normal((40, 3))
    out = feature_space_vif({"a": a, "c": c})  # default 10 components, capped by each space's columns
    assert out.groupby("space").size().to_dict() == {"a": 6, "c": 3}
    assert out.component.tolist() == [0, 1, 2, 3, 4, 5, 0, 1, 2]
    train = np.arange(20)
    sub = feature_space_vif({"a": a, "c": c}, n_components=2, train=train)
    pd.testing.assert_frame_equal(sub, feature_space_vif({"a": a[train], "c": c[train]}, n_components=2))
    dup = feature_space_vif({"a": a[:, :2], "b": a[:, :2] @ np.array([[1.0, 2.0], [3.0, -1.0]])}, n_components=2)
    assert (dup.vif > 1e6).all()  # the same subspace twice
    with pytest.raises(ValueError, match=r"^spaces must be a mapping with at least 2 feature spaces\.$"):
        feature_space_vif({"a": a})
    with pytest.raises(ValueError, match=r"^spaces\['c'\] must be 2-D \(n_samples, n_features\), got shape \(40,\)\.$"):
        feature_space_vif({"a": a, "c": c[:, 0]})
    with pytest.raises(ValueError, match=r"^spaces\['c'\] has 39 samples but another space has 40; align them first\.$"):
        feature_space_vif({"a": a, "c": c[:39]})
    with pytest.raises(ValueError, match=r"^spaces\['c'\] has zero variance; drop it before computing VIF\.$"):
        feature_space_vif({"a": a, "c": np.ones((40, 2))})
    c2 = np.ones((40, 2))
    c2[20:] = 3.0
    with pytest.raises(ValueError, match="zero variance"):  # constant on the training rows
        feature_space_vif({"a": a, "c": c2}, train=train)


def test_third_round_delays_three_spaces_banded_singletons_and_masks():
    from brainalign.encoding.delays import make_delayed, zscore_with_train
    from brainalign.encoding.fit_predict import ridge_fit_predict
    from brainalign.encoding.splits import leave_runs_out, train_test_by_runs

    spaces, Y, runs = _data()
    # delays are applied within runs, on the train-only z-scores
    df = variance_partition(spaces, Y, runs, 3, ALPHAS, 3, delays=[0, 2])
    train, test = train_test_by_runs(runs, 3)
    Za = make_delayed(zscore_with_train(spaces["a"], train), [0, 2], runs)
    mu = Y[train].mean(0)
    pred, _ = ridge_fit_predict(Za[train], (Y - mu)[train], Za[test], ALPHAS, leave_runs_out(runs[train], 3))
    np.testing.assert_allclose(df["r2_a"], r2_score(Y[test], pred + mu), rtol=1e-5, atol=1e-6)
    # three spaces: every pair has its own column
    three = variance_partition({**spaces, "c": spaces["a"][:, :1] + 1}, Y, runs, 3, ALPHAS, 2)
    assert [c for c in three.columns if c.startswith("r2_")] == ["r2_a", "r2_b", "r2_c", "r2_a_b", "r2_a_c", "r2_b_c",
                                                                 "r2_joint"]
    assert three[["r2_a_b", "r2_a_c", "r2_b_c"]].notna().all().all() and (three["r2_a_b"] > three["r2_a"] - 0.1).all()
    # banded: single spaces are plain ridge fits
    banded = variance_partition(spaces, Y, runs, 3, ALPHAS, 3, method="banded")
    plain = variance_partition(spaces, Y, runs, 3, ALPHAS, 3)
    np.testing.assert_array_equal(banded["r2_a"], plain["r2_a"])
    # columns that are each constant (but differ from each other) carry no variance
    const = np.tile([1.0, 2.0], (120, 1))
    with pytest.raises(ValueError, match="zero variance on the training runs"):
        variance_partition({"a": spaces["a"], "b": const}, Y, runs, 3, ALPHAS, 2)
    with pytest.raises(ValueError, match="zero variance; drop it"):
        feature_space_vif({"a": spaces["a"], "b": const})
    rows_const = np.tile(np.arange(3.0), (120, 1)) * 0 + np.arange(120.0)[:, None]  # every row constant, columns vary
    assert len(feature_space_vif({"a": spaces["a"], "r": rows_const}, n_components=1)) == 2
    # a 0/1 mask of every voxel is a mask, not a list of voxel indices
    t = pd.DataFrame({"r2_joint": [0.5] * 5, "unique_a": [0.1, 0.2, 0.3, 0.4, 0.5]})
    got = partition_percentages(t, {"m": np.array([0, 1, 1, 0, 1])})
    assert got.n_voxels.tolist() == [3, 3]
    assert got.percent.iloc[1] == pytest.approx(100 * np.mean([0.2, 0.3, 0.5]) / 0.5)
