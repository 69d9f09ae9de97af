"""Arms of a model comparison (video-audio study, methods.md §10 row 6): instruction-tuned models against
in-context, non-instruction-tuned and unimodal arms.

An arm's score per unit (held-out run of one subject; subject in the group results) is the mean over its models
of each model's mean score over its spaces at one layer depth, so that a model with 13 prompts weighs as much as a
prompt-free one. The first arm is compared with each other arm by
:func:`brainalign.analysis.group.group_comparisons` (paired t and Wilcoxon, both effect sizes), with the gain
in percent of the other arm, the unit of the seed's "+9 % / +15 % / +20 %".
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from brainalign.analysis.group import group_comparisons
from brainalign.features.base import resolve_layers

__all__ = ["arm_spaces", "arm_scores", "arm_comparisons", "arm_tables", "ARM_COMPARISON_COLUMNS"]

ARM_COMPARISON_COLUMNS = ("a", "b", "mean_a", "mean_b", "percent_gain", "n", "mean_diff", "sem_diff", "n_better",
                          "cohen_dz", "t", "p_t", "w", "p_wilcoxon", "rank_biserial", "unit", "metric")


def arm_spaces(spaces: pd.DataFrame, arms: Sequence, depth: float | int, in_context_k: int | None = None
               ) -> dict[str, dict[str, list[str]]]:
    """The fitted spaces of every arm's models, at the layer of each model nearest ``depth``.

    Parameters
    ----------
    spaces : DataFrame ``space, kind, model, prompt, layer, depth`` (the run's spaces table)
    arms : sequence of ArmSpec-like (``name``, ``models``, ``in_context``)
    depth : float in [0, 1] (relative depth) or int (layer index)
        Where each model is scored (``analysis.arm_layer``); in-context arms use the model's in-context control
        spaces, which exist at one layer only (``analysis.controls.layer``).
    in_context_k : int, optional
        k of ``analysis.controls.in_context`` (the control spaces' prompt suffix ``~icl<k>``).

    Returns
    -------
    dict arm -> {model -> [space names]}

    Raises
    ------
    ValueError
        When a model of an arm has no fitted space (naming the arm, the model and the fix).
    """
    out: dict[str, dict[str, list[str]]] = {}
    for arm in arms:
        per_model = {}
        for model in arm.models:
            own = spaces[spaces.model == model]
            if arm.in_context:
                suffix = f"~icl{in_context_k}"
                sel = own[(own.kind == "control") & own.prompt.astype(str).str.endswith(suffix)]
            else:
                sel = own[own.kind == "model"]
                if len(sel):  # the fitted layer nearest the requested one (layer 0: depth 0, any n_layers)
                    deep = sel[sel.depth > 0]
                    n_layers = int(round(deep.layer.iloc[0] / deep.depth.iloc[0])) if len(deep) else 1
                    want = resolve_layers([depth], n_layers)[0]
                    dist = (sel.layer.astype(int) - want).abs()
                    sel = sel[sel.layer == sel.layer[dist == dist.min()].min()]
            if sel.empty:
                what = "in-context control spaces (analysis.controls.in_context)" if arm.in_context else "model spaces"
                raise ValueError(f"analysis.arms '{arm.name}': model {model!r} has no fitted {what}; check the "
                                 "arm's models and analysis.controls.")
            per_model[model] = sel.space.tolist()
        out[arm.name] = per_model
    return out


def arm_scores(scores: pd.DataFrame, members: dict[str, dict[str, list[str]]], metric: str) -> pd.DataFrame:
    """Every arm's score per unit: the mean over its models of each model's mean over its spaces.

    Parameters
    ----------
    scores : DataFrame ``space, run, <metric>``
        A run-scores table, or the group's subject-scores table (whose ``run`` numbers the subjects).
    members : dict arm -> {model -> [space names]} (:func:`arm_spaces`)
    metric : str
        Score column.

    Returns
    -------
    DataFrame ``arm, run, value, n_models, n_spaces`` (one row per arm × unit).
    """
    wide = scores.pivot_table(index="run", columns="space", values=metric, aggfunc="first")
    rows = []
    for arm, models in members.items():
        missing = [s for sp in models.values() for s in sp if s not in wide]
        if missing:
            raise ValueError(f"analysis.arms '{arm}': spaces {missing[:5]} have no scores; they were not fitted.")
        per_model = np.column_stack([wide[sp].to_numpy(dtype=np.float64).mean(axis=1) for sp in models.values()])
        value = per_model.mean(axis=1)
        for run, v in zip(wide.index, value):
            rows.append(dict(arm=arm, run=run, value=float(v), n_models=len(models),
                             n_spaces=sum(len(sp) for sp in models.values())))
    return pd.DataFrame(rows, columns=["arm", "run", "value", "n_models", "n_spaces"])


def arm_comparisons(table: pd.DataFrame, unit: str = "run", metric: str = "") -> pd.DataFrame:
    """The first arm against each other arm, paired over units.

    Parameters
    ----------
    table : DataFrame ``arm, run, value`` (:func:`arm_scores`; arms in their configured order)
    unit : str
        What the units are ("run" or "subject"), recorded in the table.
    metric : str
        The score compared, recorded in the table.

    Returns
    -------
    DataFrame with :data:`ARM_COMPARISON_COLUMNS`: ``percent_gain`` = 100 · (mean_a − mean_b) / |mean_b|, and
    the paired statistics of :func:`brainalign.analysis.group.group_comparisons` (two-sided).
    """
    arms = list(dict.fromkeys(table["arm"]))
    pairs = [(arms[0], b) for b in arms[1:]]
    cmp = group_comparisons(table.rename(columns={"run": "subject"}), pairs, key="arm")
    with np.errstate(divide="ignore", invalid="ignore"):
        cmp["percent_gain"] = 100.0 * (cmp["mean_a"] - cmp["mean_b"]) / cmp["mean_b"].abs()
    cmp["unit"], cmp["metric"] = unit, metric
    return cmp[list(ARM_COMPARISON_COLUMNS)]


def arm_tables(analysis, scores: pd.DataFrame, spaces: pd.DataFrame, unit: str = "run") -> dict[str, pd.DataFrame]:
    """``arm_scores`` and ``arm_comparisons`` of ``analysis.arms`` (empty dict when no arms are configured).

    Parameters
    ----------
    analysis : AnalysisSpec
        ``arms``, ``arm_layer``, ``metric`` and ``controls.in_context`` (k of the in-context spaces).
    scores : DataFrame ``space, run, <metric>`` (run scores, or the group's subject scores)
    spaces : DataFrame ``space, kind, model, prompt, layer, depth``
    unit : str
        "run" (one subject) or "subject" (group results).
    """
    if not analysis.arms:
        return {}
    ctl = analysis.controls
    k = ctl.in_context.k if ctl is not None and ctl.in_context is not None else None
    members = arm_spaces(spaces, analysis.arms, analysis.arm_layer, k)
    table = arm_scores(scores, members, analysis.metric)
    table.insert(2, "unit", unit)
    return dict(arm_scores=table, arm_comparisons=arm_comparisons(table, unit, analysis.metric))
