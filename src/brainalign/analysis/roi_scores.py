"""Run-level scores per ROI and what the pipeline derives from them.

Held-out runs are the independent units here (one subject per study): every
table has one row per feature space × ROI × held-out run, or summarises those
rows with a mean and an SEM over runs. The layer curves, peaks, prompt gains
and the hierarchy slope reuse :mod:`brainalign.analysis.layers` and
:mod:`brainalign.analysis.rois` with the held-out run in the ``subject`` slot.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from brainalign.analysis.layers import layer_curves, peak_layers
from brainalign.analysis.metrics import pearson_r
from brainalign.analysis.rois import stat_function, hierarchy_gain, prompt_gain
from brainalign.analysis.summary import paired_test

__all__ = ["roi_run_scores", "held_out_run_r", "roi_scores_from_r", "roi_comparisons", "roi_layer_tables", "roi_gain_tables",
           "roi_prompt_table", "combine_roi_masks"]


def combine_roi_masks(label_masks: Mapping[str, np.ndarray], label_table: Mapping[int, str],
                      groups: Mapping[str, Sequence[str | int]] | None) -> dict[str, np.ndarray]:
    """Join label masks into ROIs.

    Parameters
    ----------
    label_masks : mapping of label name -> bool ndarray of shape (n_voxels,)
    label_table : mapping of label value -> name (to accept label values in ``groups``)
    groups : mapping of ROI -> list of label names or values, optional
        None: every label is its own ROI.

    Returns
    -------
    dict of ROI -> bool ndarray of shape (n_voxels,)
    """
    if groups is None:
        return dict(label_masks)
    n = len(next(iter(label_masks.values()))) if label_masks else 0
    out = {}
    for roi, members in groups.items():
        m = np.zeros(n, dtype=bool)
        for lab in members:
            name = label_table.get(int(lab), f"label_{int(lab)}") if isinstance(lab, (int, np.integer)) else lab
            if name not in label_masks:
                raise ValueError(f"brain.rois.groups[{roi!r}] names label {lab!r}, which is not in the label image "
                                 f"and table; available: {sorted(label_masks)}.")
            m |= label_masks[name]
        out[roi] = m
    return out


def roi_run_scores(
    Y: np.ndarray, runs: np.ndarray, predictions: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
    how: str = "mean",
) -> tuple[pd.DataFrame, dict[str, dict[int, np.ndarray]]]:
    """Pearson r per voxel and held-out run, summarised per ROI.

    Parameters
    ----------
    Y : ndarray of shape (n_trs, n_voxels)
    runs : ndarray of shape (n_trs,)
    predictions : mapping space -> ndarray (n_trs, n_voxels)
        Held-out predictions; TRs never held out are NaN.
    masks : mapping ROI -> bool ndarray (n_voxels,)
    how : {"mean", "median"}
        Statistic over the ROI's voxels.

    Returns
    -------
    table : DataFrame with columns ``space, roi, run, value, n_voxels``
    voxel_r : dict space -> dict run -> ndarray (n_voxels,) of r
    """
    voxel_r = {name: held_out_run_r(Y, runs, P) for name, P in predictions.items()}
    return roi_scores_from_r(voxel_r, masks, how), voxel_r


def held_out_run_r(Y: np.ndarray, runs: np.ndarray, P: np.ndarray, r_fn=pearson_r) -> dict[int, np.ndarray]:
    """Per held-out run, Pearson r of every voxel over that run's rows whose predictions are finite.

    Parameters
    ----------
    Y, P : ndarray of shape (n_rows, n_voxels)
    runs : ndarray of shape (n_rows,)
    r_fn : callable
        ``r_fn(y_true, y_pred) -> (n_voxels,)``; the pipeline passes a voxel-blocked ``pearson_r`` (same numbers).

    Returns
    -------
    dict run -> ndarray (n_voxels,)
    """
    held = np.isfinite(P).all(1)
    return {int(run): r_fn(Y[held & (runs == run)], P[held & (runs == run)]) for run in np.unique(runs[held])}


def roi_scores_from_r(
    voxel_r: Mapping[str, Mapping[int, np.ndarray]], masks: Mapping[str, np.ndarray], how: str = "mean",
) -> pd.DataFrame:
    """The table of :func:`roi_run_scores` from per-voxel r already computed.

    Parameters
    ----------
    voxel_r : mapping space -> mapping run -> ndarray (n_voxels,) of r
    masks : mapping ROI -> bool ndarray (n_voxels,)
    how : {"mean", "median"}

    Returns
    -------
    DataFrame with columns ``space, roi, run, value, n_voxels`` (spaces, runs and ROIs in the given order)
    """
    f = stat_function(how)
    rows = []
    for name, by_run in voxel_r.items():
        for run, r in by_run.items():
            for roi, m in masks.items():
                v = r[m]
                v = v[np.isfinite(v)]
                rows.append(dict(space=name, roi=roi, run=int(run), value=float(f(v)) if v.size else np.nan,
                                 n_voxels=int(v.size)))
    return pd.DataFrame(rows, columns=["space", "roi", "run", "value", "n_voxels"])


def roi_comparisons(roi_scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Every space against ``reference`` within each ROI, paired over held-out runs.

    Returns
    -------
    DataFrame with ``space, roi, reference, mean, sem`` and the columns of
    :func:`brainalign.analysis.summary.paired_test` (one row per space × ROI, the reference included with NaN tests).
    """
    rows = []
    for roi, g in roi_scores.groupby("roi", sort=False):
        wide = g.pivot(index="run", columns="space", values="value")
        if reference not in wide:
            raise ValueError(f"reference space '{reference}' has no ROI scores; available: {sorted(wide)}.")
        for space in wide.columns:
            v = wide[space].to_numpy(dtype=float)
            base = dict(space=space, roi=roi, reference=reference, mean=float(np.nanmean(v)),
                        sem=float(np.nanstd(v, ddof=1) / np.sqrt(np.isfinite(v).sum())) if v.size > 1 else np.nan)
            if space == reference:
                rows.append(dict(base, n=v.size, mean_diff=0.0, sem_diff=np.nan, n_better=0, cohen_dz=np.nan,
                                 t=np.nan, p_t=np.nan, p_wilcoxon=np.nan))
            else:
                rows.append(dict(base, **paired_test(v, wide[reference].to_numpy(dtype=float))))
    return pd.DataFrame(rows)


def roi_layer_tables(
    voxel_r: Mapping[str, Mapping[int, np.ndarray]], spaces: pd.DataFrame, masks: Mapping[str, np.ndarray],
    how: str = "mean",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Layer curves per ROI (mean ± SEM over held-out runs) and the peak layer of every ROI.

    Parameters
    ----------
    voxel_r : from :func:`roi_run_scores`
    spaces : DataFrame with ``space, kind, model, prompt, layer, depth``
        ``depth`` is the layer's normalised depth (layer / number of blocks).
    masks : mapping ROI -> bool ndarray (n_voxels,)

    Returns
    -------
    curves : DataFrame ``model, prompt, roi, layer, depth, mean, sem, n_runs, is_peak``
    peaks : DataFrame ``model, prompt, roi, peak_layer, peak_depth, peak_value``
    """
    ms = spaces[spaces.kind == "model"]
    curves, peaks = [], []
    for (model, prompt), g in ms.groupby(["model", "prompt"], sort=True):
        g = g.sort_values("layer")
        names = [n for n in g.space if n in voxel_r]
        if not names:
            continue
        runs = sorted(set.intersection(*(set(voxel_r[n]) for n in names)))
        scores = np.stack([np.stack([voxel_r[n][run] for n in names]) for run in runs])  # (runs, layers, voxels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            c = layer_curves(scores, masks, how=how, subjects=runs, layers=g.layer.tolist())
        c["depth"] = c["layer"].map(dict(zip(g.layer, g.depth)))
        summ = c.groupby(["roi", "layer", "depth"], sort=False)["value"].agg(
            mean="mean", sem=lambda x: x.std(ddof=1) / np.sqrt(x.notna().sum()) if len(x) > 1 else np.nan,
            n_runs="count").reset_index()
        p = peak_layers(c, group_how="mean")
        summ["is_peak"] = summ["layer"].to_numpy() == summ["roi"].map(p.set_index("roi")["peak_layer"]).to_numpy()
        summ.insert(0, "prompt", prompt)
        summ.insert(0, "model", model)
        p.insert(0, "prompt", prompt)
        p.insert(0, "model", model)
        curves.append(summ)
        peaks.append(p)
    if not curves:
        return (pd.DataFrame(columns=["model", "prompt", "roi", "layer", "depth", "mean", "sem", "n_runs", "is_peak"]),
                pd.DataFrame(columns=["model", "prompt", "roi", "peak_layer", "peak_depth", "peak_value"]))
    return pd.concat(curves, ignore_index=True), pd.concat(peaks, ignore_index=True)


def roi_gain_tables(
    roi_scores: pd.DataFrame, spaces: pd.DataFrame, unprompted: str, hierarchy: Sequence[str] | None = None,
    early: Sequence[str] | None = None, late: Sequence[str] | None = None, layer_means: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prompt-driven gain per ROI (prompted − unprompted, same model and layer) and its slope along the hierarchy.

    Parameters
    ----------
    roi_scores : from :func:`roi_run_scores`
    spaces : DataFrame ``space, kind, model, prompt, layer, depth``
    unprompted : str
        Prompt name of the baseline features.
    hierarchy : sequence of ROI names, early → late, optional
        Each ROI is one level; None skips the slope.
    early, late : sequence of ROI names, optional
        Ends of the early/late ratio (default: the first and the last ROI of ``hierarchy``).
    layer_means : DataFrame ``model, prompt, layer, mean``, optional
        Whole-brain layer means; the slope is computed at the prompt's best
        layer by this table (default: at every layer).

    Returns
    -------
    gain : DataFrame ``model, prompt, layer, depth, roi, run, prompted, baseline, gain``
    slope : DataFrame ``model, prompt, layer, slope, slope_t, slope_p, early_late_ratio, early, late, levels``
        (empty without a hierarchy). ``slope`` is the least-squares slope of the mean gain over runs
        against the ROI's position in the hierarchy; t and p test the per-run slopes against 0.
    """
    ms = spaces[spaces.kind == "model"]
    gains, slopes = [], []
    for (model, prompt, layer), g in ms.groupby(["model", "prompt", "layer"], sort=True):
        if prompt == unprompted:
            continue
        ref = ms[(ms.model == model) & (ms.prompt == unprompted) & (ms.layer == layer)]
        if ref.empty:
            continue
        pr = roi_scores[roi_scores.space == g.space.iloc[0]].rename(columns={"run": "subject"})
        bs = roi_scores[roi_scores.space == ref.space.iloc[0]].rename(columns={"run": "subject"})
        t = prompt_gain(pr, bs).rename(columns={"subject": "run"})
        t.insert(0, "depth", g.depth.iloc[0])
        t.insert(0, "layer", layer)
        t.insert(0, "prompt", prompt)
        t.insert(0, "model", model)
        gains.append(t)
    gain = pd.concat(gains, ignore_index=True) if gains else pd.DataFrame(
        columns=["model", "prompt", "layer", "depth", "roi", "run", "prompted", "baseline", "gain"])
    if hierarchy is None or gain.empty:
        return gain, pd.DataFrame()
    early = list(early or hierarchy[:1])
    late = list(late or hierarchy[-1:])
    levels = [(r, [r]) for r in hierarchy]
    for (model, prompt, layer), g in gain.groupby(["model", "prompt", "layer"], sort=True):
        if layer_means is not None:
            lm = layer_means[(layer_means.model == model) & (layer_means.prompt == prompt)]
            if len(lm) and layer != lm.loc[lm["mean"].idxmax(), "layer"]:
                continue
        _, s = hierarchy_gain(g.rename(columns={"run": "subject"}), levels, early=early, late=late)
        slopes.append(dict(model=model, prompt=prompt, layer=layer, slope=s["slope"], slope_t=s["slope_t"],
                           slope_p=s["slope_p"], early_late_ratio=s["early_late_ratio"], early=" + ".join(early),
                           late=" + ".join(late), levels=" > ".join(s["levels"])))
    return gain, pd.DataFrame(slopes)


def roi_prompt_table(roi_scores: pd.DataFrame, spaces: pd.DataFrame) -> pd.DataFrame:
    """Every prompt's score in every ROI, per model and layer, ranked within the ROI (the best instruction per ROI).

    Parameters
    ----------
    roi_scores : DataFrame ``space, roi, run, value`` (from :func:`roi_run_scores`, or a group's subject-level table)
    spaces : DataFrame ``space, kind, model, prompt, layer``

    Returns
    -------
    DataFrame ``model, layer, roi, prompt, value, sem, n, rank, is_best, margin`` — ``value`` is the mean over the
    units (held-out runs or subjects), ``rank`` 1 = best prompt in that ROI, ``margin`` = best minus second best
    (on the best row; NaN elsewhere). Models read with fewer than 2 prompts are left out.
    """
    ms = spaces[(spaces.kind == "model") & (spaces.prompt != "none")][["space", "model", "prompt", "layer"]]
    m = roi_scores.merge(ms, on="space")
    cols = ["model", "layer", "roi", "prompt", "value", "sem", "n", "rank", "is_best", "margin"]
    if m.empty:
        return pd.DataFrame(columns=cols)
    g = m.groupby(["model", "layer", "roi", "prompt"], sort=False)["value"]
    out = g.agg(value="mean", sem=lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan,
                n="count").reset_index()
    out = out[out.groupby(["model", "layer", "roi"])["prompt"].transform("nunique") > 1]
    out["rank"] = out.groupby(["model", "layer", "roi"])["value"].rank(ascending=False, method="min").astype(int)
    out["is_best"] = out["rank"] == 1
    second = out.groupby(["model", "layer", "roi"])["value"].transform(lambda v: v.nlargest(2).iloc[-1])
    out["margin"] = np.where(out["is_best"], out["value"] - second, np.nan)
    return out.sort_values(["model", "layer", "roi", "rank"], ignore_index=True)[cols]
