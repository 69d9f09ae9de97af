"""Run-level summaries: comparisons across held-out runs, layer curves, prompt gains.

Inputs are the tidy ``run_scores`` table (space, run, mean_r, ...) that
:func:`brainalign.pipeline.runner.cross_validate` returns: one row per feature space
and held-out run. Held-out runs are the independent units of these tests.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainalign.analysis.stats import paired_statistics

__all__ = ["paired_test", "compare_to_reference", "layer_table", "prompt_gain_table"]


def paired_test(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired comparison of ``a`` against ``b`` (same units, e.g. held-out runs).

    The run-level view of :func:`brainalign.analysis.stats.paired_statistics`
    (two-sided; a NaN in any pair makes the statistics NaN).

    Returns
    -------
    dict with n, mean_diff, sem_diff, n_better, cohen_dz, t, p_t (two-sided
    paired t), p_wilcoxon (two-sided signed-rank; NaN with fewer than 2 units
    or when all differences are zero).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_test needs two 1-D arrays of equal length, got {a.shape} and {b.shape}.")
    s = paired_statistics(a, b, nan_policy="propagate")
    return {k: s[k] for k in ("n", "mean_diff", "sem_diff", "n_better", "cohen_dz", "t", "p_t", "p_wilcoxon")}


def _wide(run_scores: pd.DataFrame, metric: str = "mean_r") -> pd.DataFrame:
    return run_scores.pivot(index="run", columns="space", values=metric)


def compare_to_reference(run_scores: pd.DataFrame, reference: str, metric: str = "mean_r") -> pd.DataFrame:
    """Every feature space against ``reference``, paired over held-out runs."""
    wide = _wide(run_scores, metric)
    if reference not in wide:
        raise ValueError(f"reference space '{reference}' was not fitted; available: {sorted(wide)}.")
    rows = []
    for space in wide.columns:
        if space == reference:
            continue
        res = paired_test(wide[space].to_numpy(), wide[reference].to_numpy())
        rows.append(dict(space=space, reference=reference, mean=wide[space].mean(), **res))
    return pd.DataFrame(rows).sort_values("mean", ascending=False, ignore_index=True)


def layer_table(run_scores: pd.DataFrame, spaces: pd.DataFrame, metric: str = "mean_r") -> pd.DataFrame:
    """Mean and SEM over held-out runs per model × prompt × layer, with the peak layer flagged."""
    m = run_scores.merge(spaces[spaces.kind == "model"], on="space")
    if m.empty:
        return pd.DataFrame(columns=["model", "prompt", "layer", "depth", "mean", "sem", "is_peak"])
    g = m.groupby(["model", "prompt", "layer", "depth"])[metric]
    out = g.agg(mean="mean", sem=lambda x: x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan)
    out = out.reset_index()
    out["is_peak"] = out.groupby(["model", "prompt"])["mean"].transform("max") == out["mean"]
    return out


def prompt_gain_table(
    run_scores: pd.DataFrame, spaces: pd.DataFrame, unprompted: str, metric: str = "mean_r"
) -> pd.DataFrame:
    """Prompt-driven gain: prompted minus unprompted score, per model × prompt × layer, paired over runs."""
    wide = _wide(run_scores, metric)
    ms = spaces[spaces.kind == "model"]
    rows = []
    for (model, prompt, layer), grp in ms.groupby(["model", "prompt", "layer"]):
        if prompt == unprompted:
            continue
        ref = ms[(ms.model == model) & (ms.prompt == unprompted) & (ms.layer == layer)]
        if ref.empty:
            continue
        res = paired_test(wide[grp.space.iloc[0]].to_numpy(), wide[ref.space.iloc[0]].to_numpy())
        rows.append(dict(model=model, prompt=prompt, layer=layer, depth=grp.depth.iloc[0], **res))
    return pd.DataFrame(rows)
