"""Across-subject aggregation: per-subject result tables → group tables and paired tests.

Every input is a tidy table that one subject's run produces, concatenated over
subjects with a ``subject`` column (``run_scores``, ``roi_scores``,
``layers``). The chain is voxel → ROI (already inside ``roi_scores``, with
``brain.rois.how``) → subject (mean over held-out runs: they are folds of one
cross-validation) → group (``how``: mean or median over subjects, with SEM and
MAD). Model and prompt comparisons are paired across subjects — subjects are
the independent units here — with a paired t-test and a Wilcoxon signed-rank
test side by side, and their effect sizes (Cohen's d_z, rank-biserial r),
all from :func:`brainalign.analysis.stats.paired_statistics`.
"""
from __future__ import annotations

import warnings
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from brainalign.analysis.stats import fdr_bh, mad, paired_statistics, sem

__all__ = [
    "subject_table",
    "group_summary_table",
    "group_comparisons",
    "group_layer_table",
    "group_tables",
    "group_partition_table",
    "partition_asymmetry_table",
    "group_coupling_table",
    "baseline_comparison_table",
]

_COMPARISON_STATS = ("n", "mean_diff", "median_diff", "sem_diff", "mad_diff", "n_better", "cohen_dz", "t", "p_t", "w",
                     "p_wilcoxon", "rank_biserial")


def _need(table: pd.DataFrame, cols: Sequence[str], name: str) -> None:
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; concatenate the per-subject tables with a 'subject' "
                         f"column (e.g. df.assign(subject='01')). It has {list(table.columns)}.")


def _check_how(how: str) -> None:
    if how not in ("mean", "median"):
        raise ValueError(f"how={how!r}; use 'mean' or 'median'.")


def subject_table(table: pd.DataFrame, value: str, by: Sequence[str] = ("space",)) -> pd.DataFrame:
    """One value per subject and ``by`` group: the mean over held-out runs.

    Parameters
    ----------
    table : DataFrame with ``subject``, ``*by``, ``value`` (and usually ``run``)
    value : str
        Column to aggregate (e.g. "mean_r_responsive" of run_scores, "value" of roi_scores).
    by : sequence of str

    Returns
    -------
    DataFrame ``subject, *by, value, n_runs``
    """
    by = list(by)
    _need(table, ["subject", *by, value], "table")
    g = table.groupby(["subject", *by], sort=True)[value]
    out = g.mean().rename("value").reset_index()
    out["n_runs"] = g.count().to_numpy()
    return out


def group_summary_table(subjects: pd.DataFrame, by: Sequence[str] = ("space",),
                        how: Literal["mean", "median"] = "mean") -> pd.DataFrame:
    """Group value per ``by`` group from one value per subject.

    Parameters
    ----------
    subjects : DataFrame ``subject, *by, value`` (from :func:`subject_table`)
    by : sequence of str
    how : {"mean", "median"}
        Statistic over subjects (NaN ignored).

    Returns
    -------
    DataFrame ``*by, value, how, sem, mad, n_subjects`` (``sem`` ddof=1; ``mad`` raw, as Xiao et al.).
    """
    _check_how(how)
    by = list(by)
    _need(subjects, ["subject", *by, "value"], "subjects")
    rows = []
    for key, g in subjects.groupby(by, sort=True):
        v = g["value"].to_numpy(dtype=np.float64)
        ok = v[np.isfinite(v)]
        key = key if isinstance(key, tuple) else (key,)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            val = (np.mean(ok) if how == "mean" else np.median(ok)) if ok.size else np.nan
            rows.append({**dict(zip(by, key)), "value": float(val), "how": how,
                         "sem": float(sem(ok)) if ok.size > 1 else np.nan,
                         "mad": float(mad(ok)) if ok.size else np.nan, "n_subjects": int(ok.size)})
    return pd.DataFrame(rows)


def group_comparisons(
    subjects: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    key: str = "space",
    by: Sequence[str] = (),
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> pd.DataFrame:
    """Paired across-subject tests of ``a`` against ``b`` for every pair (and every ``by`` group, e.g. ROI).

    Parameters
    ----------
    subjects : DataFrame ``subject, key, *by, value``
    pairs : sequence of (a, b)
        Values of ``key`` to compare (e.g. a model space and the reference).
    key : str
    by : sequence of str
        Further grouping, each group tested on its own (e.g. ``("roi",)``).
    alternative : direction of ``a - b``

    Returns
    -------
    DataFrame ``*by, a, b, mean_a, mean_b`` and the statistics of
    :func:`~brainalign.analysis.stats.paired_statistics` (``n`` = subjects
    with both values; ``t``/``p_t`` paired t, ``w``/``p_wilcoxon`` signed
    rank, ``cohen_dz``, ``rank_biserial``, ``sem_diff``, ``mad_diff``).
    """
    by = list(by)
    _need(subjects, ["subject", key, *by, "value"], "subjects")
    groups = subjects.groupby(by, sort=True) if by else [((), subjects)]
    rows = []
    for gkey, g in groups:
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        wide = g.pivot_table(index="subject", columns=key, values="value", aggfunc="first")
        for a, b in pairs:
            if a not in wide or b not in wide:
                continue
            va, vb = wide[a].to_numpy(dtype=np.float64), wide[b].to_numpy(dtype=np.float64)
            s = paired_statistics(va, vb, alternative=alternative, nan_policy="omit")
            ok = np.isfinite(va) & np.isfinite(vb)
            rows.append({**dict(zip(by, gkey)), "a": a, "b": b,
                         "mean_a": float(va[ok].mean()) if ok.any() else np.nan,
                         "mean_b": float(vb[ok].mean()) if ok.any() else np.nan,
                         **{k: s[k] for k in _COMPARISON_STATS}})
    return pd.DataFrame(rows, columns=[*by, "a", "b", "mean_a", "mean_b", *_COMPARISON_STATS])


def baseline_comparison_table(subjects: pd.DataFrame, spaces: pd.DataFrame, models: Sequence[str],
                              baselines: Sequence[str], n_components: int | None = None,
                              q: float = 0.05) -> pd.DataFrame:
    """Every feature space of ``models`` against every space of ``baselines``, paired over subjects.

    The gameplay study's row 4 (methods.md §10: VLMs and LAMs against the RL baselines, "also at matched
    dimensionality"): the tests are :func:`group_comparisons`' (two-sided), with Benjamini–Hochberg q-values
    over the table's paired t p-values, and each side's width as fitted, so a reader sees whether the two sides
    were compared at equal dimensionality.

    Parameters
    ----------
    subjects : DataFrame ``subject, space, value``
        One score per subject and space (:func:`subject_table`).
    spaces : DataFrame ``space, model, prompt, layer, dim``
        The fitted spaces (``dim``: columns before any PCA).
    models, baselines : sequences of str
        Model names (the ``model`` column of ``spaces``) on each side.
    n_components : int, optional
        ``timing.pca_components``: a space is reduced to ``min(n_components, dim)`` components (a space with fewer
        columns is kept whole); None keeps every space whole.
    q : float
        FDR level of ``better`` (q < q and the model side higher).

    Returns
    -------
    DataFrame ``model, prompt, layer, baseline, a, b, n_components_a, n_components_b, matched, mean_a, mean_b``,
    the statistics of :func:`group_comparisons`, ``q_t`` and ``better``; one row per (model space, baseline space).
    """
    _need(spaces, ["space", "model", "prompt", "layer", "dim"], "spaces")
    info = spaces.drop_duplicates("space").set_index("space")
    side_a = info.index[info["model"].isin(list(models))].tolist()
    side_b = info.index[info["model"].isin(list(baselines))].tolist()
    comp = group_comparisons(subjects, [(a, b) for a in side_a for b in side_b])
    width = info["dim"].astype(int) if n_components is None else info["dim"].astype(int).clip(upper=int(n_components))
    out = pd.DataFrame({"model": info["model"].reindex(comp["a"]).to_numpy(),
                        "prompt": info["prompt"].reindex(comp["a"]).to_numpy(),
                        "layer": info["layer"].reindex(comp["a"]).to_numpy(),
                        "baseline": info["model"].reindex(comp["b"]).to_numpy()}).join(comp)
    out.insert(6, "n_components_a", width.reindex(out["a"]).to_numpy())
    out.insert(7, "n_components_b", width.reindex(out["b"]).to_numpy())
    out.insert(8, "matched", out["n_components_a"] == out["n_components_b"])
    out["q_t"] = fdr_bh(out["p_t"].to_numpy(dtype=np.float64), q)[1] if len(out) else np.zeros(0)
    out["better"] = (out["q_t"] < q) & (out["mean_diff"] > 0)
    return out


def group_layer_table(layers: pd.DataFrame, how: Literal["mean", "median"] = "mean") -> pd.DataFrame:
    """Group layer curves from the per-subject ``layers`` tables, peak layer flagged.

    Parameters
    ----------
    layers : DataFrame ``subject, model, prompt, layer, depth, mean`` (``mean`` = the subject's mean over runs)
    how : {"mean", "median"} over subjects

    Returns
    -------
    DataFrame ``model, prompt, layer, depth, value, how, sem, mad, n_subjects, is_peak``
    """
    _need(layers, ["subject", "model", "prompt", "layer", "depth", "mean"], "layers")
    subj = layers.rename(columns={"mean": "value"})[["subject", "model", "prompt", "layer", "depth", "value"]]
    out = group_summary_table(subj, by=("model", "prompt", "layer", "depth"), how=how)
    out["is_peak"] = out.groupby(["model", "prompt"])["value"].transform("max") == out["value"]
    return out


def group_tables(
    run_scores: pd.DataFrame | None = None,
    roi_scores: pd.DataFrame | None = None,
    layers: pd.DataFrame | None = None,
    spaces: pd.DataFrame | None = None,
    reference: str | None = None,
    unprompted: str | None = None,
    metric: str = "mean_r_responsive",
    how: Literal["mean", "median"] = "mean",
) -> dict[str, pd.DataFrame]:
    """Group tables from several subjects' results (each table with a ``subject`` column).

    Parameters
    ----------
    run_scores : DataFrame ``subject, space, run, <metric>``, optional
    roi_scores : DataFrame ``subject, space, roi, run, value``, optional
    layers : DataFrame ``subject, model, prompt, layer, depth, mean``, optional
    spaces : DataFrame ``space, kind, model, prompt, layer``, optional
        Needed for the prompt comparisons (prompted vs ``unprompted``, same model and layer).
    reference : str, optional
        Space every other one is compared against, paired across subjects.
    unprompted : str, optional
    metric : str
        Column of ``run_scores`` (``analysis.metric``).
    how : {"mean", "median"}
        Statistic over subjects (``analysis.group_how``).

    Returns
    -------
    dict with (as inputs allow) ``group_scores``, ``group_comparisons`` (vs reference),
    ``group_prompt_gain`` (prompt vs unprompted), ``group_roi_scores``, ``group_roi_comparisons``,
    ``group_layers``. Each comparison row carries both tests and both effect sizes.
    """
    _check_how(how)
    out: dict[str, pd.DataFrame] = {}
    pairs_ref: list[tuple[str, str]] = []
    pairs_prompt: list[tuple[str, str]] = []
    if run_scores is not None:
        subj = subject_table(run_scores, metric, ("space",))
        out["group_scores"] = group_summary_table(subj, ("space",), how)
        names = sorted(subj["space"].unique())
        if reference is not None:
            if reference not in names:
                raise ValueError(f"reference={reference!r} is not a space of run_scores; choose from {names}.")
            pairs_ref = [(s, reference) for s in names if s != reference]
            out["group_comparisons"] = group_comparisons(subj, pairs_ref)
        if spaces is not None and unprompted is not None:
            ms = spaces[spaces.kind == "model"]
            for r in ms.itertuples():
                if r.prompt == unprompted:
                    continue
                base = ms[(ms.model == r.model) & (ms.prompt == unprompted) & (ms.layer == r.layer)]
                if len(base):
                    pairs_prompt.append((r.space, base.space.iloc[0]))
            gain = group_comparisons(subj, pairs_prompt)
            info = ms.set_index("space")[["model", "prompt", "layer"]]
            out["group_prompt_gain"] = info.reindex(gain["a"]).reset_index(drop=True).join(gain)
    if roi_scores is not None:
        subj = subject_table(roi_scores, "value", ("space", "roi"))
        out["group_roi_scores"] = group_summary_table(subj, ("space", "roi"), how)
        if reference is not None:
            names = sorted(subj["space"].unique())
            out["group_roi_comparisons"] = group_comparisons(
                subj, [(s, reference) for s in names if s != reference], by=("roi",))
    if layers is not None:
        out["group_layers"] = group_layer_table(layers, how)
    return out


# --------------------------------------------------------------------------- variance partitions over subjects
_PARTITION_KEYS = ["partition", "roi", "part", "space", "aggregation"]


def group_partition_table(partitions: pd.DataFrame, how: Literal["mean", "median"] = "mean") -> pd.DataFrame:
    """Variance-partition percentages over subjects, per partition × ROI × part × aggregation.

    Parameters
    ----------
    partitions : DataFrame ``subject, partition, roi, part, space, aggregation, percent, n_voxels``
        The subjects' ``partition`` (whole brain, ROI "all") or ``partition_rois`` tables, stacked.
    how : {"mean", "median"}
        Statistic over subjects.

    Returns
    -------
    DataFrame ``partition, roi, part, space, aggregation, percent, how, sem, mad, n_subjects, n_voxels``
    (``percent``: the group value; ``n_voxels``: mean over subjects of the voxels entering), in the input's order.
    """
    _need(partitions, ["subject", *_PARTITION_KEYS, "percent", "n_voxels"], "partitions")
    subj = partitions.rename(columns={"percent": "value"})
    out = group_summary_table(subj, _PARTITION_KEYS, how).rename(columns={"value": "percent"})
    n_vox = partitions.groupby(_PARTITION_KEYS, sort=False)["n_voxels"].mean().rename("n_voxels").reset_index()
    order = partitions[_PARTITION_KEYS].drop_duplicates().reset_index(drop=True).reset_index(names="_order")
    out = out.merge(n_vox, on=_PARTITION_KEYS).merge(order, on=_PARTITION_KEYS)
    return out.sort_values("_order", ignore_index=True).drop(columns="_order")


def partition_asymmetry_table(partitions: pd.DataFrame, aggregation: str = "ratio_of_means") -> pd.DataFrame:
    """The unique parts of each partition against each other, per ROI, paired across subjects.

    The gameplay study's row 2 (the LAM's action prompt keeps 27 % unique variance, its reasoning prompt −5 %,
    strongest in frontal-motor cortex) is this comparison: unique % of the joint R² of one space against the
    other's, one value per subject.

    Parameters
    ----------
    partitions : DataFrame ``subject, partition, roi, part, space, aggregation, percent``
    aggregation : {"ratio_of_means", "mean_of_ratios"}

    Returns
    -------
    DataFrame ``partition, roi, a, b`` (space names), ``mean_a, mean_b`` and the paired statistics of
    :func:`group_comparisons` (``n`` = subjects).
    """
    _need(partitions, ["subject", *_PARTITION_KEYS, "percent"], "partitions")
    uniq = partitions[(partitions.aggregation == aggregation) & partitions.part.str.fullmatch(r"unique_s\d+")]
    frames = []
    for name, g in uniq.groupby("partition", sort=False):
        parts = list(dict.fromkeys(g["part"]))
        pairs = [(x, y) for i, x in enumerate(parts) for y in parts[i + 1:]]
        comp = group_comparisons(g.rename(columns={"percent": "value"}), pairs, key="part", by=("roi",))
        legend = g.drop_duplicates("part").set_index("part")["space"]
        comp["a"], comp["b"] = comp["a"].map(legend), comp["b"].map(legend)
        comp.insert(0, "partition", name)
        frames.append(comp)
    cols = ["partition", "roi", "a", "b", "mean_a", "mean_b", *_COMPARISON_STATS]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


# --------------------------------------------------------------------------- instruction coupling over subjects
def group_coupling_table(coupling: pd.DataFrame, how: Literal["mean", "median"] = "mean") -> pd.DataFrame:
    """Instruction-semantics coupling over subjects, and each in-context variant against the instructed maps.

    Parameters
    ----------
    coupling : DataFrame ``subject, model, maps, r, ...``
        The subjects' ``coupling`` tables (:func:`brainalign.pipeline.extras.coupling_tables`), stacked.
    how : {"mean", "median"} over subjects

    Returns
    -------
    DataFrame ``model, maps, r`` (``how`` over subjects), ``sem, mad, n_subjects`` and, for every ``maps`` other
    than "instructed", the paired comparison with the instructed maps over subjects (``mean_diff`` = r of this
    variant − r instructed, ``p_t``, ``p_wilcoxon``; :func:`group_comparisons`).
    """
    _need(coupling, ["subject", "model", "maps", "r"], "coupling")
    subj = coupling.rename(columns={"r": "value"})[["subject", "model", "maps", "value"]]
    out = group_summary_table(subj, ("model", "maps"), how).rename(columns={"value": "r"})
    variants = [m for m in pd.unique(subj["maps"]) if m != "instructed"]
    cmp = group_comparisons(subj, [(m, "instructed") for m in variants], key="maps", by=("model",))
    cmp = cmp.rename(columns={"a": "maps"})[["model", "maps", "mean_diff", "p_t", "p_wilcoxon"]]
    return out.merge(cmp, on=["model", "maps"], how="left")
