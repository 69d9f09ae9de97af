"""Across-subject aggregation and the one paired-test core shared by run-level and subject-level tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss

from brainalign.analysis import summary
from brainalign.analysis.group import group_comparisons, group_layer_table, group_summary_table, group_tables
from brainalign.analysis.stats import paired_statistics, paired_test


# ------------------------------------------------------------------ one core, two views
def test_paired_core_matches_scipy_and_both_views_agree():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.3, 0.1, 9), rng.normal(0.25, 0.1, 9)
    s = paired_statistics(a, b)
    t = ss.ttest_rel(a, b)
    w = ss.wilcoxon(a, b)
    d = a - b
    assert s["t"] == pytest.approx(t.statistic, abs=1e-10) and s["p_t"] == pytest.approx(t.pvalue, abs=1e-10)
    assert s["p_wilcoxon"] == pytest.approx(w.pvalue, abs=1e-10) and s["w"] == pytest.approx(w.statistic)
    assert s["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert s["sem_diff"] == pytest.approx(ss.sem(d)) and s["mad_diff"] == pytest.approx(ss.median_abs_deviation(d))
    run_view = summary.paired_test(a, b)
    subj_t = paired_test(a, b, test="t").iloc[0]
    subj_w = paired_test(a, b, test="wilcoxon").iloc[0]
    assert run_view["p_t"] == subj_t.p_value and run_view["p_wilcoxon"] == subj_w.p_value
    assert run_view["cohen_dz"] == subj_t.effect_size and run_view["n"] == subj_t.n == 9


def test_paired_views_keep_their_nan_policies():
    a, b = np.array([1.0, 2.0, np.nan, 4.0, 5.0]), np.array([0.5, 1.0, 1.0, 2.0, 2.0])
    run_view = summary.paired_test(a, b)  # held-out runs: a missing run makes the comparison undefined
    assert np.isnan(run_view["p_t"]) and np.isnan(run_view["p_wilcoxon"]) and np.isnan(run_view["mean_diff"])
    subj = paired_test(a, b, test="t").iloc[0]  # subjects: a missing subject is left out
    ref = ss.ttest_rel(a[[0, 1, 3, 4]], b[[0, 1, 3, 4]])
    assert subj.n == 4 and subj.p_value == pytest.approx(ref.pvalue)
    assert np.isnan(paired_statistics(np.ones(4), np.ones(4))["p_wilcoxon"])  # all differences zero
    with pytest.raises(ValueError, match="pair them"):
        paired_statistics(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="nan_policy"):
        paired_statistics(np.ones(3), np.ones(3), nan_policy="raise")


# ------------------------------------------------------------------ planted group effects
def _subjects(n_subjects=10, n_runs=6, effect=0.05, seed=0):
    """run_scores and roi_scores of several subjects: 'model' beats 'ref' by ``effect`` in V1 only; 'null' = ref."""
    rng = np.random.default_rng(seed)
    rs, roi = [], []
    for s in range(n_subjects):
        base = rng.normal(0.2, 0.05)  # subjects differ a lot: the test must be paired
        for run in range(n_runs):
            vals = dict(ref=base, model=base + effect, null=base)
            for sp, v in vals.items():
                rs.append(dict(subject=f"s{s}", space=sp, run=run, mean_r_responsive=v + rng.normal(0, 0.01)))
                for r in ("V1", "PFC"):
                    gain = effect if (sp == "model" and r == "V1") else 0.0
                    roi.append(dict(subject=f"s{s}", space=sp, roi=r, run=run, value=base + gain + rng.normal(0, 0.01)))
    return pd.DataFrame(rs), pd.DataFrame(roi)


def test_planted_model_effect_is_found_across_subjects_and_planted_null_is_not():
    rs, roi = _subjects()
    out = group_tables(run_scores=rs, roi_scores=roi, reference="ref", how="mean")
    cmp = out["group_comparisons"].set_index("a")
    assert cmp.loc["model", "p_wilcoxon"] < 0.01 and cmp.loc["model", "p_t"] < 0.01
    assert cmp.loc["model", "mean_diff"] == pytest.approx(0.05, abs=0.005) and cmp.loc["model", "rank_biserial"] == 1
    assert cmp.loc["null", "p_wilcoxon"] > 0.05 and cmp.loc["null", "p_t"] > 0.05
    assert cmp.loc["model", "n"] == 10
    rc = out["group_roi_comparisons"].set_index(["roi", "a"])
    assert rc.loc[("V1", "model"), "p_t"] < 0.01 and rc.loc[("PFC", "model"), "p_t"] > 0.05
    # group values are the mean over subjects of the per-subject mean over runs
    g = out["group_scores"].set_index("space")
    per_subject = rs[rs.space == "model"].groupby("subject").mean_r_responsive.mean()
    assert g.loc["model", "value"] == pytest.approx(per_subject.mean())
    assert g.loc["model", "sem"] == pytest.approx(ss.sem(per_subject))
    med = group_tables(run_scores=rs, how="median")["group_scores"].set_index("space")
    assert med.loc["model", "value"] == pytest.approx(per_subject.median()) and med.loc["model", "how"] == "median"


def test_group_prompt_gain_and_layers():
    rng = np.random.default_rng(1)
    spaces = pd.DataFrame([dict(space=f"M/{p}/L{l}", kind="model", model="M", prompt=p, layer=l, depth=l / 4)
                           for p in ("bare", "task") for l in (1, 2, 3)])
    rs, layers = [], []
    for s in range(8):
        base = rng.normal(0.2, 0.05)
        for sp in spaces.itertuples():
            peak = -0.02 * (sp.layer - 2) ** 2  # planted peak at layer 2
            v = base + peak + (0.03 if sp.prompt == "task" and sp.layer == 2 else 0.0)
            for run in range(4):
                rs.append(dict(subject=s, space=sp.space, run=run, mean_r=v + rng.normal(0, 0.005)))
            layers.append(dict(subject=s, model="M", prompt=sp.prompt, layer=sp.layer, depth=sp.depth, mean=v))
    out = group_tables(run_scores=pd.DataFrame(rs), layers=pd.DataFrame(layers), spaces=spaces, unprompted="bare",
                       metric="mean_r")
    gain = out["group_prompt_gain"].set_index("layer")
    assert list(gain.prompt.unique()) == ["task"] and set(gain.b) == {"M/bare/L1", "M/bare/L2", "M/bare/L3"}
    assert gain.loc[2, "p_wilcoxon"] < 0.01 and gain.loc[2, "mean_diff"] == pytest.approx(0.03, abs=0.005)
    assert gain.loc[1, "p_t"] > 0.01
    peaks = out["group_layers"][lambda d: d.is_peak]
    assert set(peaks.layer) == {2}


def test_group_inputs_are_checked():
    rs, _ = _subjects(n_subjects=3)
    with pytest.raises(ValueError, match="'subject' column"):
        group_tables(run_scores=rs.drop(columns="subject"))
    with pytest.raises(ValueError, match="reference='nope'"):
        group_tables(run_scores=rs, reference="nope")
    with pytest.raises(ValueError, match="how='max'"):
        group_summary_table(rs.rename(columns={"mean_r_responsive": "value"}), how="max")
    with pytest.raises(ValueError, match="lacks columns"):
        group_layer_table(pd.DataFrame(dict(subject=[1], model=["m"])))
    # pairs whose spaces are absent are skipped, not invented
    assert group_comparisons(rs.rename(columns={"mean_r_responsive": "value"}), [("x", "ref")]).empty


def test_baseline_comparison_table_pairs_models_with_each_baseline_and_states_the_widths():
    """Row 4's table: every model space against every baseline space, paired over subjects (parity with scipy's
    paired t), BH q over the table, and the widths each side was fitted with: min(pca_components, columns)."""
    from scipy import stats as sps

    from brainalign.analysis.group import baseline_comparison_table

    rng = np.random.default_rng(0)
    spaces = pd.DataFrame(dict(space=["V/a/L2", "V/b/L2", "DDQN/none/L0", "EMPA/none/L0", "Pixels/none/L0"],
                               model=["V", "V", "DDQN", "EMPA", "Pixels"], prompt=["a", "b", "none", "none", "none"],
                               layer=[2, 2, 0, 0, 0], dim=[3584, 3584, 4, 128, 256]))
    level = {"V/a/L2": 0.15, "V/b/L2": 0.10, "DDQN/none/L0": 0.10, "EMPA/none/L0": 0.05, "Pixels/none/L0": 0.3}
    subjects = pd.DataFrame([dict(subject=f"{s:02d}", space=sp, value=v + rng.normal(0, 0.01))
                             for s in range(8) for sp, v in level.items()])
    t = baseline_comparison_table(subjects, spaces, ["V"], ["DDQN", "EMPA"], n_components=64)
    assert len(t) == 4 and set(t["b"]) == {"DDQN/none/L0", "EMPA/none/L0"}  # Pixels is neither side
    row = t.set_index(["a", "b"])
    wide = subjects.pivot(index="subject", columns="space", values="value")
    p = sps.ttest_rel(wide["V/a/L2"], wide["DDQN/none/L0"]).pvalue
    assert row.loc[("V/a/L2", "DDQN/none/L0"), "p_t"] == pytest.approx(p)
    assert row.loc[("V/a/L2", "DDQN/none/L0"), "better"] and row.loc[("V/a/L2", "EMPA/none/L0"), "better"]
    assert not row.loc[("V/b/L2", "DDQN/none/L0"), "better"]  # planted equal: not called higher
    assert row.loc[("V/a/L2", "DDQN/none/L0"), ["n_components_a", "n_components_b", "matched"]].tolist() == [64, 4, False]
    assert row.loc[("V/a/L2", "EMPA/none/L0"), ["n_components_a", "n_components_b", "matched"]].tolist() == [64, 64, True]
    whole = baseline_comparison_table(subjects, spaces, ["V"], ["DDQN"], n_components=None)
    assert whole["n_components_a"].tolist() == [3584, 3584] and not whole["matched"].any()
