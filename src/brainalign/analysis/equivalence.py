"""Equivalence of two sets of feature spaces: two one-sided paired t-tests (TOST).

"Statistically equivalent" (gameplay study: VLMs and LAMs reach the same whole-brain accuracy) is a claim that a
non-significant difference does not support; it needs an equivalence test. With paired differences
``d = a − b`` over independent units (held-out runs of one subject, or subjects), a margin ``δ > 0`` and level
``α``, TOST (Schuirmann, 1987) rejects both ``H0: mean(d) ≤ −δ`` and ``H0: mean(d) ≥ δ``; its p value is the
larger of the two one-sided p values, and it concludes equivalence exactly when the ``1 − 2α`` confidence
interval of the mean difference lies inside ``(−δ, δ)``. The one-sided t-tests are scipy's; the table around them
is brainalign's (no well-kept library builds it from run or subject score tables).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["tost_paired", "equivalence_table", "EQUIVALENCE_COLUMNS"]

EQUIVALENCE_COLUMNS = ("name", "a", "b", "metric", "unit", "n", "mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
                       "margin", "alpha", "t_lower", "p_lower", "t_upper", "p_upper", "p_tost", "equivalent",
                       "p_difference")


def tost_paired(a, b, margin: float, alpha: float = 0.05) -> dict:
    """Two one-sided paired t-tests of ``|mean(a − b)| < margin``.

    Parameters
    ----------
    a, b : array-like of shape (n_units,)
        Paired scores (e.g. one value per subject); a pair with a NaN is dropped.
    margin : float
        Equivalence bound δ > 0 on the mean difference, in the units of the scores.
    alpha : float
        Level of each one-sided test; the confidence interval is at ``1 − 2·alpha``.

    Returns
    -------
    dict
        ``n``, ``mean_diff``, ``ci_low``, ``ci_high`` (the ``1 − 2α`` interval), ``t_lower``/``p_lower`` (H0: mean
        ≤ −δ), ``t_upper``/``p_upper`` (H0: mean ≥ δ), ``p_tost`` (the larger), ``equivalent`` (``p_tost < alpha``)
        and ``p_difference`` (two-sided paired t of mean = 0). NaN statistics (and ``equivalent`` False) with
        fewer than 2 pairs; with zero spread the differences decide exactly.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"tost_paired needs two 1-D arrays of equal length, got shapes {a.shape} and {b.shape}.")
    if not (np.isfinite(margin) and margin > 0):
        raise ValueError(f"margin must be a positive number (the equivalence bound on the mean difference), "
                         f"got {margin}.")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5) (each one-sided test's level), got {alpha}.")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    n = int(d.size)
    nan = float("nan")
    out = dict(n=n, mean_diff=float(d.mean()) if n else nan, ci_low=nan, ci_high=nan, t_lower=nan, p_lower=nan,
               t_upper=nan, p_upper=nan, p_tost=nan, equivalent=False, p_difference=nan)
    if n < 2:
        return out
    lower = stats.ttest_1samp(d, -margin, alternative="greater")
    upper = stats.ttest_1samp(d, margin, alternative="less")
    both = stats.ttest_1samp(d, 0.0)
    se = d.std(ddof=1) / np.sqrt(n)
    half = stats.t.ppf(1 - alpha, n - 1) * se
    p_tost = max(float(lower.pvalue), float(upper.pvalue))
    out.update(ci_low=float(d.mean() - half), ci_high=float(d.mean() + half),
               t_lower=float(lower.statistic), p_lower=float(lower.pvalue),
               t_upper=float(upper.statistic), p_upper=float(upper.pvalue),
               p_tost=p_tost, equivalent=bool(p_tost < alpha), p_difference=float(both.pvalue))
    return out


def equivalence_table(scores: pd.DataFrame, specs: Sequence, metric: str, unit: str = "run") -> pd.DataFrame:
    """TOST of every configured pair of space sets, paired over the units of ``scores``.

    Parameters
    ----------
    scores : DataFrame ``space, run, <metric>``
        A run-scores table (one row per space × held-out run) or the group's subject-scores table (whose ``run``
        column numbers the subjects).
    specs : sequence of EquivalenceSpec-like
        Each with ``name``, ``a`` and ``b`` (lists of fitted space names), ``margin``, ``alpha`` and ``metric``
        (None = ``metric``). A side's value per unit is the mean of its spaces' scores.
    metric : str
        Default score column (``analysis.metric``).
    unit : str
        What the units are ("run" or "subject"), recorded in the table.

    Returns
    -------
    DataFrame with :data:`EQUIVALENCE_COLUMNS`, one row per spec.

    Raises
    ------
    ValueError
        When a space of a spec was not fitted (naming the spec and the fitted spaces).
    """
    rows = []
    for spec in specs:
        col = spec.metric or metric
        wide = scores.pivot(index="run", columns="space", values=col)
        missing = [s for s in (*spec.a, *spec.b) if s not in wide]
        if missing:
            raise ValueError(f"analysis.equivalence '{spec.name}': spaces {missing} were not fitted; fitted spaces: "
                             f"{sorted(wide.columns)}.")
        va = wide[list(spec.a)].mean(axis=1).to_numpy()
        vb = wide[list(spec.b)].mean(axis=1).to_numpy()
        res = tost_paired(va, vb, spec.margin, spec.alpha)
        ok = np.isfinite(va) & np.isfinite(vb)
        rows.append(dict(name=spec.name, a=" + ".join(spec.a), b=" + ".join(spec.b), metric=col, unit=unit,
                         mean_a=float(va[ok].mean()) if ok.any() else np.nan,
                         mean_b=float(vb[ok].mean()) if ok.any() else np.nan,
                         margin=float(spec.margin), alpha=float(spec.alpha), **res))
    return pd.DataFrame(rows, columns=list(EQUIVALENCE_COLUMNS))
