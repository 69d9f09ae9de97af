"""Group level: the subjects of a study side by side, and comparisons paired across subjects.

Every subject is analysed on its own (its own voxels, folds and voxel
selection); the group tables stack the per-subject tables with a ``subject``
column and test each feature space against the reference across subjects
(one value per subject: the mean of its held-out run/fold scores), which is
the comparison a reviewer expects when subjects are the unit of inference.
"""
from __future__ import annotations

import pandas as pd

from brainalign.config import Experiment
from brainalign.report.results import Results
from brainalign.timing.spaces import resolve_space_name, resolved_names

__all__ = ["stack_tables", "subject_scores", "subject_roi_scores", "group_roi_tables", "group_results", "RL_BASELINES",
           "rl_baseline_table"]

#: ``ModelSpec.baseline`` values that are RL baselines (row 4 compares every model space with them)
RL_BASELINES = ("bson_regressors", "rl_agent")

STACKED = ("spaces", "run_scores", "comparisons", "layers", "prompt_gain", "controls", "roi_scores", "equivalence",
           "arm_comparisons", "coupling", "roi_normalised",
           "partition", "partition_rois")


def stack_tables(per_subject: dict[str, Results], name: str) -> pd.DataFrame | None:
    """One table of every subject's ``name`` table, with a leading ``subject`` column (None when absent)."""
    parts = []
    for subject, res in per_subject.items():
        t = res.tables.get(name)
        if t is not None:
            parts.append(t.assign(subject=str(subject))[["subject", *t.columns]])
    return pd.concat(parts, ignore_index=True) if parts else None


def subject_scores(run_scores: pd.DataFrame) -> pd.DataFrame:
    """Each subject's mean over its held-out runs/folds, shaped like a run-scores table whose 'runs' are subjects.

    Returns
    -------
    DataFrame with columns subject, space, run (= the subject's position, 0-based), the score columns
    (mean_r, median_r, mean_r_responsive) and n_runs.
    """
    cols = [c for c in ("mean_r", "median_r", "mean_r_responsive") if c in run_scores.columns]
    g = run_scores.groupby(["subject", "space"], sort=False)
    out = g[cols].mean().reset_index()
    out["n_runs"] = g.size().to_numpy()
    order = {s: i for i, s in enumerate(pd.unique(run_scores["subject"]))}
    out.insert(2, "run", out["subject"].map(order).astype(int))
    return out.sort_values(["space", "run"], ignore_index=True)


def subject_roi_scores(roi_scores: pd.DataFrame) -> pd.DataFrame:
    """Each subject's ROI scores averaged over its held-out runs, shaped like one subject's ``roi_scores`` whose
    'runs' are subjects.

    Parameters
    ----------
    roi_scores : DataFrame ``subject, space, roi, run, value, n_voxels``
        The subjects' ``roi_scores`` tables, stacked (:func:`stack_tables`).

    Returns
    -------
    DataFrame ``subject, space, roi, run`` (= the subject's position, 0-based), ``value``, ``n_voxels`` (the
    subject's ROI size) and ``n_runs``.
    """
    from brainalign.analysis.group import subject_table

    out = subject_table(roi_scores, "value", ("space", "roi"))
    sizes = roi_scores.groupby(["subject", "space", "roi"], sort=False)["n_voxels"].max().rename("n_voxels")
    out = out.merge(sizes.reset_index(), on=["subject", "space", "roi"], how="left")
    order = {s: i for i, s in enumerate(pd.unique(roi_scores["subject"]))}
    out.insert(1, "run", out["subject"].map(order).astype(int))
    return out


def group_roi_tables(exp: Experiment, roi_scores: pd.DataFrame, spaces: pd.DataFrame, reference: str,
                     layers: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """ROI comparisons, prompt-driven gain per ROI and its slope along the hierarchy, paired over subjects.

    The functions of one subject's ROI tables (:func:`brainalign.pipeline.runner.roi_tables`) on
    :func:`subject_roi_scores`, so every test's unit is the subject (the gameplay study's "gain along the
    hierarchy" at the group level, methods.md §10 row 3).

    Returns
    -------
    dict with ``roi_scores``, ``roi_comparisons``, ``roi_prompts`` (models with several prompts) and, with
    ``analysis.unprompted``, ``roi_gain`` and (with
    ``brain.rois.hierarchy``) ``roi_hierarchy``.
    """
    from brainalign.analysis.roi_scores import roi_comparisons, roi_gain_tables, roi_prompt_table

    scores = subject_roi_scores(roi_scores)
    out = dict(roi_scores=scores, roi_comparisons=roi_comparisons(scores, reference))
    prompts = roi_prompt_table(scores, spaces)
    if len(prompts):
        out["roi_prompts"] = prompts
    spec, a = exp.brain.rois, exp.analysis
    if a.unprompted is not None and (spaces.kind == "model").any():
        gain, slope = roi_gain_tables(scores.drop(columns="subject"), spaces, a.unprompted, spec.hierarchy if spec is not None else None,
                                      spec.early if spec is not None else None,
                                      spec.late if spec is not None else None, layers)
        out["roi_gain"] = gain
        if len(slope):
            out["roi_hierarchy"] = slope
    return out


def rl_baseline_table(exp: Experiment, scores: pd.DataFrame, spaces: pd.DataFrame) -> pd.DataFrame | None:
    """Every model space (kind text / multimodal) against every RL baseline's space, paired over subjects (row 4).

    Parameters
    ----------
    exp : Experiment
        Its RL baselines (``baseline`` in :data:`RL_BASELINES`), ``analysis.metric``, ``analysis.fdr_q`` and
        ``timing.pca_components``.
    scores : DataFrame ``subject, space, <metric>``
        Each subject's mean over its held-out runs (:func:`subject_scores`).
    spaces : DataFrame
        The fitted spaces.

    Returns
    -------
    DataFrame of :func:`brainalign.analysis.group.baseline_comparison_table`, or None when ``spaces`` has no
    space of an RL baseline or of a model.
    """
    from brainalign.analysis.group import baseline_comparison_table

    fitted = set(spaces["model"])
    rl = [m.name for m in exp.models if m.baseline in RL_BASELINES and m.name in fitted]
    models = [m.name for m in exp.models if m.kind != "baseline" and m.name in fitted]
    if not rl or not models:
        return None
    a = exp.analysis
    subjects = scores[["subject", "space", a.metric]].rename(columns={a.metric: "value"})
    return baseline_comparison_table(subjects, spaces, models, rl, exp.timing.pca_components, a.fdr_q)


def group_results(exp: Experiment, per_subject: dict[str, Results]) -> Results:
    """Group results whose unit of comparison is the subject.

    ``run_scores`` holds one row per subject × space (each subject's mean over its held-out runs), so the
    comparisons, layer curves and prompt gains computed from it — with the same functions as for one
    subject — are paired across subjects. The per-subject tables are kept, stacked, as ``subject_<name>``.
    """
    from brainalign.analysis.arms import arm_tables
    from brainalign.analysis.equivalence import equivalence_table
    from brainalign.analysis.group import (group_coupling_table, group_layer_table, group_partition_table,
                                           group_summary_table, partition_asymmetry_table)
    from brainalign.analysis.summary import compare_to_reference, layer_table, prompt_gain_table
    from brainalign.pipeline.extras import group_analyses

    metric = exp.analysis.metric
    stacked = {name: stack_tables(per_subject, name) for name in STACKED}
    spaces = stacked["spaces"].drop(columns="subject").drop_duplicates("space", ignore_index=True)
    scores = subject_scores(stacked["run_scores"])
    reference = resolve_space_name(exp.analysis.reference, spaces)
    tables = dict(spaces=spaces, run_scores=scores, comparisons=compare_to_reference(scores, reference, metric),
                  layers=layer_table(scores, spaces, metric))
    if stacked["layers"] is not None and len(stacked["layers"]):  # median/mean, SEM, MAD over subjects, peak
        tables["group_layers"] = group_layer_table(stacked["layers"], exp.analysis.group_how)
    if exp.analysis.equivalence:  # the same TOST, paired over subjects
        equiv = resolved_names(exp.analysis, spaces).equivalence
        tables["equivalence"] = equivalence_table(scores, equiv, metric, unit="subject")
    tables.update(arm_tables(exp.analysis, scores, spaces, unit="subject"))  # row 6's arms, paired over subjects
    if exp.analysis.unprompted is not None:
        tables["prompt_gain"] = prompt_gain_table(scores, spaces, exp.analysis.unprompted, metric)
    rl = rl_baseline_table(exp, scores, spaces)
    if rl is not None:  # row 4: the models against the RL baselines, with the widths compared
        tables["rl_baselines"] = rl
    if stacked["partition"] is not None and len(stacked["partition"]):  # % of the joint R², over subjects
        tables["partition"] = group_partition_table(stacked["partition"], exp.analysis.group_how)
        tables["partition_asymmetry"] = partition_asymmetry_table(stacked["partition"])
    if stacked["partition_rois"] is not None and len(stacked["partition_rois"]):
        tables["partition_rois"] = group_partition_table(stacked["partition_rois"], exp.analysis.group_how)
        tables["partition_roi_asymmetry"] = partition_asymmetry_table(stacked["partition_rois"])
    if stacked["coupling"] is not None and len(stacked["coupling"]):  # row 7, over subjects
        tables["coupling"] = group_coupling_table(stacked["coupling"], exp.analysis.group_how)
    if stacked["roi_normalised"] is not None and len(stacked["roi_normalised"]):  # ceiling-normalised, per ROI
        rn = stacked["roi_normalised"].rename(columns={"mean_normalised": "value"})
        tables["group_roi_normalised"] = group_summary_table(rn, ("space", "roi"), exp.analysis.group_how)
    if stacked["roi_scores"] is not None and len(stacked["roi_scores"]):
        tables.update(group_roi_tables(exp, stacked["roi_scores"], spaces, reference, tables["layers"]))
    for name, t in stacked.items():
        if t is not None and name != "spaces":
            tables[f"subject_{name}"] = t
    tables.update(group_analyses(exp, per_subject))  # both paired tests, ROI level, Xiao et al.'s best layer
    first = next(iter(per_subject.values()))
    manifest = dict(first.manifest)
    manifest["subjects"] = {s: r.manifest.get("inputs", {}) for s, r in per_subject.items()}
    manifest["data"] = dict(manifest.get("data", {}), subject="group", subjects=list(per_subject), unit="subject")
    return Results(exp, tables, mask_img=None, manifest=manifest)
