"""Layer curves: which depth of a model aligns best with which ROI.

Scores come as an array ``(n_subjects, n_layers, n_voxels)`` (one encoding
score per voxel for the features of each layer). Depth is normalised to
[0, 1] (``layer / (n_layers - 1)``) so that models with different numbers of
layers can be compared.
"""
from __future__ import annotations

from typing import Literal, Mapping

import numpy as np
import pandas as pd

from brainalign.analysis.rois import stat_function

__all__ = ["normalised_depth", "layer_curves", "peak_layers", "best_layer"]


def normalised_depth(n_layers: int) -> np.ndarray:
    """``layer / (n_layers - 1)`` for layers 0..n_layers-1 (a single layer has depth 0)."""
    if int(n_layers) < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}.")
    n = int(n_layers)
    return np.arange(n) / max(n - 1, 1)


def _scores3(scores) -> np.ndarray:
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(
            f"scores must be (n_layers, n_voxels) or (n_subjects, n_layers, n_voxels), got shape {a.shape}."
        )
    return a


def layer_curves(
    scores,
    masks: Mapping[str, np.ndarray] | None = None,
    how: Literal["mean", "median"] = "mean",
    subjects=None,
    layers=None,
) -> pd.DataFrame:
    """Score per subject, ROI and layer.

    Parameters
    ----------
    scores : ndarray of shape (n_subjects, n_layers, n_voxels) or (n_layers, n_voxels)
    masks : mapping of str -> bool ndarray of shape (n_voxels,), optional
        ROIs; None = one ROI "all".
    how : {"mean", "median"}
        Statistic over the voxels of an ROI (NaN ignored).
    subjects : sequence, optional
        Subject labels (default 0..n_subjects-1).
    layers : sequence of int, optional
        Layer indices (default 0..n_layers-1); depth is computed from their rank.

    Returns
    -------
    DataFrame with columns ``subject, roi, layer, depth, value``.
    """
    a = _scores3(scores)
    n_s, n_l, n_v = a.shape
    f = stat_function(how)
    masks = {"all": np.ones(n_v, dtype=bool)} if masks is None else masks
    subjects = list(range(n_s)) if subjects is None else list(subjects)
    layers = list(range(n_l)) if layers is None else list(layers)
    if len(subjects) != n_s or len(layers) != n_l:
        raise ValueError(f"got {len(subjects)} subjects and {len(layers)} layers for scores of shape {a.shape}.")
    depth = normalised_depth(n_l)
    rows = []
    for roi, m in masks.items():
        m = np.asarray(m, dtype=bool)
        if m.shape != (n_v,):
            raise ValueError(f"masks[{roi!r}] has shape {m.shape}; it must be boolean over the {n_v} voxels.")
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                vals = f(a[:, :, m], axis=2) if m.any() else np.full((n_s, n_l), np.nan)
        for i, s in enumerate(subjects):
            for j, layer in enumerate(layers):
                rows.append({"subject": s, "roi": roi, "layer": layer, "depth": depth[j], "value": vals[i, j]})
    return pd.DataFrame(rows)


def peak_layers(curves: pd.DataFrame, by=("subject", "roi"), group_how: Literal["mean", "median"] | None = None) -> pd.DataFrame:
    """Layer of maximal score.

    Parameters
    ----------
    curves : DataFrame from :func:`layer_curves`
    by : tuple of str
        Peak per these groups (default per subject and ROI).
    group_how : {"mean", "median"}, optional
        If given, first average the curves over subjects with this statistic
        and return one peak per ROI (``by`` is then ignored).

    Returns
    -------
    DataFrame with columns ``*by, peak_layer, peak_depth, peak_value``.
    """
    if group_how is not None:
        f = stat_function(group_how)
        curves = (curves.groupby(["roi", "layer", "depth"], sort=False)["value"]
                  .apply(lambda v: f(v.to_numpy())).reset_index())
        by = ("roi",)
    rows = []
    for key, g in curves.groupby(list(by), sort=False):
        v = g["value"].to_numpy(dtype=np.float64)
        key = key if isinstance(key, tuple) else (key,)
        if not np.isfinite(v).any():
            rows.append({**dict(zip(by, key)), "peak_layer": np.nan, "peak_depth": np.nan, "peak_value": np.nan})
            continue
        k = int(np.nanargmax(v))
        rows.append({**dict(zip(by, key)), "peak_layer": g["layer"].iloc[k], "peak_depth": g["depth"].iloc[k],
                     "peak_value": v[k]})
    return pd.DataFrame(rows)


def best_layer(scores, mask=None) -> dict:
    """The brain score of Xiao et al. (2026): median over voxels → median over subjects → max over layers.

    Parameters
    ----------
    scores : ndarray of shape (n_subjects, n_layers, n_voxels)
    mask : bool ndarray of shape (n_voxels,), optional

    Returns
    -------
    dict with ``best_layer`` (index), ``best_depth``, ``score`` (group median
    at that layer), ``mad`` (median absolute deviation of the subject
    medians at that layer), ``group_curve`` (n_layers,), ``subject_curves``
    (n_subjects, n_layers).
    """
    import warnings

    from brainalign.analysis.stats import mad

    a = _scores3(scores)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (a.shape[2],):
            raise ValueError(f"mask has shape {mask.shape}; it must be boolean over the {a.shape[2]} voxels.")
        a = a[:, :, mask]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        subj = np.nanmedian(a, axis=2)
        group = np.nanmedian(subj, axis=0)
    if not np.isfinite(group).any():
        raise ValueError("every layer has NaN scores; nothing to select.")
    k = int(np.nanargmax(group))
    return {"best_layer": k, "best_depth": float(normalised_depth(a.shape[1])[k]), "score": float(group[k]),
            "mad": float(mad(subj[:, k])), "group_curve": group, "subject_curves": subj}
