"""ROIs and the cortical hierarchy: label images → masks → ROI, subject and group tables.

Masks are boolean arrays over the voxels (or vertices) that the scores
describe. Every label of a label image becomes a mask — not only label 1,
the bug of the NSD study's ``extract_roi`` — and a requested label that the table
does not know is an error, not an empty ROI.

Aggregation follows the studies: voxel → sub-ROI → ROI (``mean`` for the
Movie10 and NSD studies, ``median`` for Xiao et al.) → subject → group, each
step explicit and labelled in the returned tables.
"""
from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "load_label_table",
    "load_label_image",
    "roi_masks",
    "glasser_groups",
    "glasser_group_masks",
    "hierarchy_levels",
    "aggregate_rois",
    "group_summary",
    "prompt_gain",
    "hierarchy_gain",
    "instruction_profiles",
    "best_instruction_per_roi",
]

from brainalign.brain.atlas import (glasser_group_masks, glasser_groups, hierarchy_levels, load_label_image,
                                    load_label_table, roi_masks)  # re-exported: label I/O lives in brain/

Stat = Literal["mean", "median"]


def stat_function(how: str):
    """``np.nanmean`` or ``np.nanmedian`` for ``how`` ('mean' or 'median')."""
    if how == "mean":
        return np.nanmean
    if how == "median":
        return np.nanmedian
    raise ValueError(f"how={how!r}; use 'mean' or 'median'.")


def _scores_by_subject(scores) -> dict:
    if isinstance(scores, Mapping):
        return {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"scores must be (n_voxels,), (n_subjects, n_voxels) or a mapping subject -> (n_voxels,); got {a.shape}.")
    return {i: row for i, row in enumerate(a)}


def aggregate_rois(
    scores,
    masks: Mapping[str, np.ndarray],
    rois: Mapping[str, Sequence[str]] | None = None,
    how: Stat = "mean",
    how_subrois: Stat | None = None,
) -> pd.DataFrame:
    """Voxel → sub-ROI → ROI scores per subject.

    Parameters
    ----------
    scores : ndarray of shape (n_voxels,) or (n_subjects, n_voxels), or mapping subject -> (n_voxels,)
        Per-voxel values (r, normalised r, a partition part, a gain ...).
        The voxel sets of all subjects must match the masks.
    masks : mapping of str -> bool ndarray of shape (n_voxels,)
        Sub-ROI (or ROI) masks, e.g. from :func:`roi_masks`.
    rois : mapping of ROI -> list of mask names, optional
        Groups of sub-ROIs. None: each mask is its own ROI.
    how : {"mean", "median"}
        Statistic over the voxels of a sub-ROI (NaN ignored).
    how_subrois : {"mean", "median"}, optional
        Statistic over the sub-ROIs of an ROI (default: ``how``). The group's
        Movie10 notebook: mean over sub-ROIs of the mean over vertices.

    Returns
    -------
    DataFrame with columns ``subject, roi, value, n_voxels, n_subrois``.
    """
    f_vox = stat_function(how)
    f_sub = stat_function(how_subrois or how)
    by_subject = _scores_by_subject(scores)
    rois = {m: [m] for m in masks} if rois is None else dict(rois)
    for roi, members in rois.items():
        missing = [m for m in members if m not in masks]
        if missing:
            raise ValueError(f"ROI {roi!r} lists sub-ROI(s) {missing} that are not in masks; available: {sorted(masks)}.")
    rows = []
    for subj, vals in by_subject.items():
        for name, m in masks.items():
            if np.asarray(m).shape != vals.shape:
                raise ValueError(
                    f"masks[{name!r}] has shape {np.asarray(m).shape} but subject {subj!r} has scores of shape "
                    f"{vals.shape}; masks must be boolean over the same voxels."
                )
        for roi, members in rois.items():
            sub_vals, n_vox = [], 0
            for m in members:
                v = vals[np.asarray(masks[m], dtype=bool)]
                v = v[np.isfinite(v)]
                n_vox += v.size
                sub_vals.append(f_vox(v) if v.size else np.nan)
            sub_vals = np.asarray(sub_vals)
            value = f_sub(sub_vals) if np.isfinite(sub_vals).any() else np.nan
            rows.append({"subject": subj, "roi": roi, "value": value, "n_voxels": n_vox, "n_subrois": len(members)})
    return pd.DataFrame(rows)


def group_summary(table: pd.DataFrame, how: Stat = "mean", value: str = "value", by: Sequence[str] = ("roi",)) -> pd.DataFrame:
    """Subject-level table → group table with dispersion.

    Parameters
    ----------
    table : DataFrame with a ``subject`` column, the ``by`` columns and ``value``
    how : {"mean", "median"}
        Group statistic over subjects (Xiao et al.: median; others: mean).
    value : str
        Column to summarise.
    by : sequence of str
        Grouping columns (e.g. ``("roi",)`` or ``("roi", "layer")``).

    Returns
    -------
    DataFrame with columns ``*by, value, sem, mad, n_subjects, statistic``.
    """
    from brainalign.analysis.stats import mad, sem

    f = stat_function(how)
    missing = [c for c in (*by, value) if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; it has {list(table.columns)}.")
    rows = []
    for key, g in table.groupby(list(by), sort=False):
        v = g[value].to_numpy(dtype=np.float64)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "value": f(v) if np.isfinite(v).any() else np.nan, "sem": float(sem(v)),
                     "mad": float(mad(v)), "n_subjects": int(np.isfinite(v).sum()), "statistic": how})
    return pd.DataFrame(rows)


def prompt_gain(prompted: pd.DataFrame, baseline: pd.DataFrame, value: str = "value") -> pd.DataFrame:
    """Prompt-driven gain per subject and ROI: prompted − baseline.

    Parameters
    ----------
    prompted, baseline : DataFrame from :func:`aggregate_rois` (``subject, roi, value``)

    Returns
    -------
    DataFrame with columns ``subject, roi, prompted, baseline, gain``.
    """
    for nm, t in (("prompted", prompted), ("baseline", baseline)):
        if not {"subject", "roi", value} <= set(t.columns):
            raise ValueError(f"{nm} needs columns subject, roi, {value}; it has {list(t.columns)}.")
    m = prompted[["subject", "roi", value]].merge(
        baseline[["subject", "roi", value]], on=["subject", "roi"], suffixes=("_p", "_b"), how="outer", indicator=True
    )
    if (m["_merge"] != "both").any():
        bad = m.loc[m["_merge"] != "both", ["subject", "roi"]].values.tolist()[:5]
        raise ValueError(f"prompted and baseline do not cover the same (subject, roi) pairs, e.g. {bad}; align them first.")
    m = m.rename(columns={f"{value}_p": "prompted", f"{value}_b": "baseline"}).drop(columns="_merge")
    m["gain"] = m["prompted"] - m["baseline"]
    return m


def hierarchy_gain(
    gains: pd.DataFrame,
    hierarchy: Sequence[tuple[str, Sequence[str]]] | None = None,
    early: Sequence[str] = ("early_visual",),
    late: Sequence[str] = ("frontal", "motor"),
    how: Stat = "mean",
    value: str = "gain",
) -> tuple[pd.DataFrame, dict]:
    """Gain per hierarchy level, its slope along the hierarchy and the early/late ratio.

    Parameters
    ----------
    gains : DataFrame with ``subject, roi`` and ``value`` (e.g. from :func:`prompt_gain`)
    hierarchy : sequence of (level, [ROI names]), optional
        Ordered from the bottom; default :func:`hierarchy_levels`. Levels with
        no ROI present in ``gains`` are skipped.
    early, late : sequence of level names
        The gameplay study compares early visual cortex with frontal-parietal / motor
        regions ("roughly half as much").
    how : {"mean", "median"}
        Statistic over the ROIs of a level and over subjects.
    value : str

    Returns
    -------
    levels : DataFrame
        ``subject, level, order, value`` (per subject) — use
        :func:`group_summary` with ``by=("level",)`` for the group table.
    summary : dict
        ``slope`` (least-squares slope of the group level values against the
        level order 0, 1, ...), ``slope_per_subject`` (array), ``slope_t``,
        ``slope_p`` (one-sample t-test of the subject slopes against 0; NaN
        with < 2 subjects), ``early_late_ratio`` (group gain at ``early`` /
        group gain at ``late``), ``levels`` used.
    """
    from scipy import stats as ss

    f = stat_function(how)
    hierarchy = hierarchy_levels() if hierarchy is None else [(lv, list(r)) for lv, r in hierarchy]
    if not {"subject", "roi", value} <= set(gains.columns):
        raise ValueError(f"gains needs columns subject, roi, {value}; it has {list(gains.columns)}.")
    known = set(gains["roi"])
    all_listed = {r for _, rs in hierarchy for r in rs}
    if not all_listed & known:
        raise ValueError(f"no ROI of the hierarchy ({sorted(all_listed)}) is in gains (ROIs {sorted(known)}).")
    rows = []
    order = 0
    used = []
    for level, members in hierarchy:
        members = [r for r in members if r in known]
        if not members:
            continue
        used.append(level)
        sub = gains[gains["roi"].isin(members)]
        for subj, g in sub.groupby("subject", sort=False):
            rows.append({"subject": subj, "level": level, "order": order, "value": f(g[value].to_numpy(dtype=float))})
        order += 1
    for nm, lv in (("early", early), ("late", late)):
        if not set(lv) & set(used):
            raise ValueError(f"{nm} levels {list(lv)} are not among the levels present ({used}); name existing levels.")
    levels = pd.DataFrame(rows)
    if len(used) < 2:
        raise ValueError(f"only {len(used)} hierarchy level has data ({used}); a slope needs at least 2.")
    grp = levels.groupby("order")["value"].apply(lambda v: f(v.to_numpy()))
    slope = float(np.polyfit(grp.index.to_numpy(dtype=float), grp.to_numpy(), 1)[0])
    per_subject = []
    for _, g in levels.groupby("subject", sort=False):
        if g["order"].nunique() >= 2:
            per_subject.append(np.polyfit(g["order"].to_numpy(dtype=float), g["value"].to_numpy(), 1)[0])
    per_subject = np.asarray(per_subject)
    if per_subject.size >= 2:
        t = ss.ttest_1samp(per_subject, 0.0)
        slope_t, slope_p = float(t.statistic), float(t.pvalue)
    else:
        slope_t = slope_p = np.nan
    e = f(levels.loc[levels["level"].isin(early), "value"].to_numpy())
    lt = f(levels.loc[levels["level"].isin(late), "value"].to_numpy())
    summary = {"slope": slope, "slope_per_subject": per_subject, "slope_t": slope_t, "slope_p": slope_p,
               "early_late_ratio": float(e / lt) if lt != 0 else np.nan, "levels": used}
    return levels, summary


def instruction_profiles(
    scores_by_instruction: Mapping[str, object],
    masks: Mapping[str, np.ndarray],
    rois: Mapping[str, Sequence[str]] | None = None,
    how: Stat = "mean",
) -> pd.DataFrame:
    """Per-instruction ROI profiles (NSD and video-audio studies: which instruction aligns best where).

    Parameters
    ----------
    scores_by_instruction : mapping of instruction -> scores
        Each value as accepted by :func:`aggregate_rois` (``(n_voxels,)``,
        ``(n_subjects, n_voxels)`` or a mapping subject -> ``(n_voxels,)``).
    masks, rois, how : as :func:`aggregate_rois`

    Returns
    -------
    DataFrame with columns ``instruction, subject, roi, value, n_voxels, n_subrois``.
    """
    if not isinstance(scores_by_instruction, Mapping) or not scores_by_instruction:
        raise ValueError("scores_by_instruction must be a non-empty mapping {instruction: scores}.")
    tables = []
    for instr, sc in scores_by_instruction.items():
        t = aggregate_rois(sc, masks, rois, how)
        t.insert(0, "instruction", instr)
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def best_instruction_per_roi(profiles: pd.DataFrame, how: Stat = "mean") -> pd.DataFrame:
    """Instruction with the highest group score in every ROI.

    Parameters
    ----------
    profiles : DataFrame from :func:`instruction_profiles`
    how : {"mean", "median"}
        Statistic over subjects.

    Returns
    -------
    DataFrame with columns ``roi, best_instruction, value, runner_up, margin``.
    """
    f = stat_function(how)
    if not {"instruction", "roi", "value"} <= set(profiles.columns):
        raise ValueError(f"profiles needs columns instruction, roi, value; it has {list(profiles.columns)}.")
    grp = profiles.groupby(["roi", "instruction"], sort=False)["value"].apply(lambda v: f(v.to_numpy())).reset_index()
    rows = []
    for roi, g in grp.groupby("roi", sort=False):
        g = g.sort_values("value", ascending=False)
        second = g.iloc[1] if len(g) > 1 else None
        rows.append({"roi": roi, "best_instruction": g.iloc[0]["instruction"], "value": g.iloc[0]["value"],
                     "runner_up": None if second is None else second["instruction"],
                     "margin": np.nan if second is None else g.iloc[0]["value"] - second["value"]})
    return pd.DataFrame(rows)
