"""Report sections of the extra analyses (:mod:`brainalign.pipeline.extras`): one small table each.

Every section names the table it shows (the same numbers are in ``<table>.csv``) and says how to read it,
including the conventions (ceiling threshold and clipping, the unit of every paired test).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["MAX_ROWS", "extra_sections"]


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if np.isinf(v):
            return "∞" if v > 0 else "−∞"  # e.g. a VIF of perfectly collinear spaces
        if not np.isfinite(v):
            return "–"
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return str(v)


MAX_ROWS = 15  # rows of a table shown in the page; the whole table is the section's CSV download


def _section(title: str, table: str, df: pd.DataFrame, cols: list[str], how: str) -> dict:
    cols = [c for c in cols if c in df.columns]
    shown = df[cols].head(MAX_ROWS)
    return dict(title=title, table=table, cols=cols, how=how, more=len(df) - len(shown),
                rows=[[_fmt(v) for v in r] for r in shown.itertuples(index=False)])


def extra_sections(res) -> list[dict]:
    """Sections (title, table, cols, rows, how; png bytes where a figure answers it) for every extra table present
    in ``res.tables``."""
    t, a = res.tables, res.experiment.analysis
    out = []
    if "best_layer" in t and len(t["best_layer"]):
        out.append(_section(
            "Best layer (median voxels → median subjects → max layer)", "best_layer", t["best_layer"],
            ["model", "prompt", "roi", "best_layer", "best_depth", "score", "mad", "n_subjects"],
            "Brain score of Xiao et al. (2026): the held-out r of every voxel, its median over the ROI's voxels, "
            "the median of that over subjects, and the layer where it is largest. MAD: spread of the subject "
            "medians at that layer (0 with one subject)."))
    if "normalised_summary" in t and len(t["normalised_summary"]):
        s = t["normalised_summary"]
        out.append(_section(
            "Ceiling-normalised scores", "normalised_summary", s,
            ["subject", "space", "mean_normalised", "median_normalised", "n_voxels", "n_excluded"],
            f"Convention: {s['convention'].iloc[0]} Ceiling: {t['ceiling']['method'].iloc[0]}."
            if "ceiling" in t else f"Convention: {s['convention'].iloc[0]}"))
    if "roi_normalised" in t and len(t["roi_normalised"]):
        from brainalign.report.figures import roi_normalised_bars

        rn = t["roi_normalised"]
        info = t["spaces"].set_index("space")["model"] if "spaces" in t else pd.Series(dtype=str)
        overall = rn.groupby("space", sort=False)["mean_normalised"].mean()
        model = overall.index.map(lambda s: info.get(s, s))
        best = overall.groupby(model).idxmax().tolist()  # each model's best space, by its mean over ROIs
        spec = res.experiment.brain.rois
        order = list(spec.hierarchy) if spec is not None and spec.hierarchy else None
        sec = _section(
            "Ceiling-normalised scores per ROI", "roi_normalised", rn[rn.space.isin(best)],
            ["space", "roi", "mean_normalised", "median_normalised", "mean_r", "n_voxels"],
            "Each voxel's held-out r divided by its noise ceiling (correlation scale), averaged over the ROI's voxels "
            "whose ceiling passes the threshold; each model's best space shown (every space in the CSV). 1 = the "
            "model explains all that the noise lets any model explain.")
        sec["png"] = roi_normalised_bars(rn, best, order)
        out.append(sec)
    if "partition_dominance" in t and len(t["partition_dominance"]):
        out.append(_section(
            "Dominance analysis of the partitions", "partition_dominance", t["partition_dominance"],
            ["partition", "roi", "space", "mean_dominance", "percent_of_joint", "n_dominant", "n_voxels"],
            "General dominance (Azen & Budescu): the mean gain in held-out R² when a space joins every subset of "
            "the others; the spaces' dominances add up to the joint R² (percent_of_joint sums to 100). Voxels with "
            "joint R² above the partition's min_r2_joint."))
    if "partition_vif" in t and len(t["partition_vif"]):
        v = t["partition_vif"].groupby(["partition", "space"], sort=False)["vif"].agg(
            components="count", median_vif="median", max_vif="max").reset_index()
        out.append(_section(
            "Collinearity between partition spaces (VIF)", "partition_vif", v,
            ["partition", "space", "components", "median_vif", "max_vif"],
            "Each space's principal components regressed on all other components: VIF = 1 / (1 − R²). Near 1: "
            "the spaces carry different information; large (or infinite): they overlap, and their unique parts "
            "are small by construction."))
    if "partition_banded" in t and len(t["partition_banded"]):
        out.append(_section(
            "Banded-ridge robustness check", "partition_banded",
            t["partition_banded"][t["partition_banded"].aggregation == "ratio_of_means"],
            ["partition", "part", "space", "percent_ridge", "percent_banded", "difference", "n_voxels"],
            "The partition refitted with one penalty per space (himalaya BandedRidgeCV) beside the shared-penalty "
            "ridge (percent of the joint R², ratio of means). Large differences mean the partition depends on the "
            "regularisation and should be read with care."))
    if "partition_controls" in t and len(t["partition_controls"]):
        alpha = a.controls.alpha if a.controls is not None else 0.05
        out.append(_section(
            "Unique variance against its control", "partition_controls", t["partition_controls"],
            ["partition", "space", "control", "mean_effect", "mean_control", "mean_diff", "n_better", "n", "p",
             "survives"],
            f"Unique variance of the space (held-out R², mean over voxels) when the partition is fitted with the "
            f"space and with its control in its place; paired over held-out runs (Wilcoxon, two-sided). It survives "
            f"when the effect is larger with p < {alpha}."))
    if "arm_comparisons" in t and len(t["arm_comparisons"]):
        from brainalign.report.figures import arm_bars

        c = t["arm_comparisons"]
        unit = c["unit"].iloc[0]
        sec = _section(
            f"Model arms: {c['a'].iloc[0]} against each arm", "arm_comparisons", c,
            ["a", "b", "mean_a", "mean_b", "percent_gain", "n", "mean_diff", "cohen_dz", "p_t", "p_wilcoxon"],
            f"Each arm's score per {unit} is the mean over its models of the model's mean {c['metric'].iloc[0]} over "
            f"its prompts at layer depth {a.arm_layer} (in-context arms: the in-context control spaces); "
            f"percent_gain = 100 · (a − b) / |b|; paired t and Wilcoxon over {unit}s (two-sided). Per-{unit} arm "
            "scores in arm_scores.csv.")
        if "arm_scores" in t:
            sec["png"] = arm_bars(t["arm_scores"], c)
        out.append(sec)
    if "coupling" in t and len(t["coupling"]) and "p_value" in t["coupling"]:
        from brainalign.report.figures import coupling_scatter

        sec = _section(
            "Instruction-semantics coupling", "coupling", t["coupling"],
            ["model", "maps", "layer", "text_model", "text_layer", "method", "r", "p_value", "n_instructions",
             "n_pairs"],
            "Oota et al. (2025, video-audio): correlation between the similarity of the instruction texts "
            "(embedded by text_model at text_layer) and the similarity of the alignment maps they produce (voxelwise "
            "r at layer); 'instructed' = the instructions alone, 'in_context_k<k>' = the same instructions after k "
            "worked examples; p from a Mantel test permuting instruction labels (one-sided, coupling > 0).")
        if "coupling_similarity" in t and len(t["coupling_similarity"]):
            sec["png"] = coupling_scatter(t["coupling_similarity"], t["coupling"])
        out.append(sec)
    elif "coupling" in t and len(t["coupling"]):  # group results: r over subjects
        out.append(_section(
            "Instruction-semantics coupling over subjects", "coupling", t["coupling"],
            ["model", "maps", "r", "sem", "n_subjects", "mean_diff", "p_t", "p_wilcoxon"],
            "Each subject's coupling r (instruction-text similarity vs alignment-map similarity), averaged over "
            "subjects; in-context rows carry the paired difference from the instructed maps over subjects."))
    if "group_roi_normalised" in t and len(t["group_roi_normalised"]):
        from brainalign.report.figures import roi_normalised_bars

        g = t["group_roi_normalised"].rename(columns={"value": "mean_normalised"})
        info = t["spaces"].set_index("space")["model"] if "spaces" in t else pd.Series(dtype=str)
        overall = g.groupby("space", sort=False)["mean_normalised"].mean()
        best = overall.groupby(overall.index.map(lambda s: info.get(s, s))).idxmax().tolist()
        spec = res.experiment.brain.rois
        sec = _section(
            "Ceiling-normalised scores per ROI over subjects", "group_roi_normalised", g[g.space.isin(best)],
            ["space", "roi", "mean_normalised", "sem", "n_subjects"],
            "Each subject's ROI mean of r / inter-subject ceiling (roi_normalised of every subject), averaged over "
            "subjects (the Movie10 notebook's last step); each model's best space shown, every space in the CSV.")
        sec["png"] = roi_normalised_bars(g, best, list(spec.hierarchy) if spec is not None and spec.hierarchy else None)
        out.append(sec)
    if "equivalence" in t and len(t["equivalence"]):
        from brainalign.report.figures import equivalence_intervals

        e = t["equivalence"]
        sec = _section(
            "Equivalence tests (TOST)", "equivalence", e,
            ["name", "a", "b", "unit", "n", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "margin", "p_tost",
             "equivalent", "p_difference"],
            f"Two one-sided paired t-tests (Schuirmann) over {e['unit'].iloc[0]}s: each side's score per "
            f"{e['unit'].iloc[0]} is the mean of its spaces; the sides are equivalent when the "
            f"{1 - 2 * e['alpha'].iloc[0]:.0%} interval of the mean difference lies inside ± margin (p_TOST < "
            f"α). p_difference is the two-sided paired t of no difference: 'not significantly different' is not "
            f"equivalence.")
        sec["png"] = equivalence_intervals(e)  # bytes; the page embeds them
        out.append(sec)
    if "rl_baselines" in t and len(t["rl_baselines"]):
        from brainalign.report.figures import rl_baseline_differences

        rl = t["rl_baselines"]
        best = rl.loc[rl.groupby(["model", "baseline"], sort=False)["mean_a"].idxmax()]  # each model's best space
        k = res.experiment.timing.pca_components
        sec = _section(
            "Models against the RL baselines", "rl_baselines", best,
            ["a", "b", "n_components_a", "n_components_b", "matched", "n", "mean_a", "mean_b", "mean_diff",
             "n_better", "p_t", "q_t", "p_wilcoxon", "better"],
            f"Each model space against each RL baseline, paired over subjects (each subject's score: its mean over "
            f"held-out runs); p_t paired t (two-sided), q_t Benjamini–Hochberg over the whole table, better: q_t < "
            f"{a.fdr_q} and the model higher. Shown: each model's best space against each baseline (every space in "
            f"the CSV). Matched dimensionality: every space is reduced to timing.pca_components = {k} components; a "
            f"space with fewer columns (the RL regressors often) is kept whole, so n_components says what was "
            f"compared, and matched = no means the model had more components than the baseline.")
        sec["png"] = rl_baseline_differences(rl)
        out.append(sec)
    return out
