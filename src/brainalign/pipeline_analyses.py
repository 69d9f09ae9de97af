"""The analyses of ``analysis:`` that run after the encoding, as tidy tables.

:func:`extra_analyses` is called once by :func:`brainalign.pipeline.run` and
returns the tables below (each only when its option is on and its inputs
exist):

=========================  ==================================================================
``layer_medians``          median r over voxels per subject × model × prompt × ROI × layer
``best_layer``             seed 002's best layer: median voxels → median subjects → max layer
``ceiling``                correlation-scale noise ceiling per voxel (``analysis.ceiling``)
``normalised_scores``      r / ceiling per space × voxel, low ceilings NaN (threshold, clip)
``normalised_summary``     mean and median normalised score per space, with the convention
``partition_dominance``    general dominance of every partition space, per ROI
``partition_vif``          VIF of every principal component of every partition space
``partition_banded``       ridge vs banded-ridge percentages of the joint R² (robustness)
``partition_controls``     unique variance of a space vs its control, paired over held-out runs
``partition_control_runs`` the per-run values behind ``partition_controls``
``coupling``               instruction-semantics coupling (seed 001) and its Mantel p
``coupling_similarity``    the two instruction × instruction similarity matrices, tidy
=========================  ==================================================================

The functions that need several subjects (:func:`subject_subset_ceiling_table`)
take a mapping ``subject -> responses`` so that a multi-subject driver can call
them directly; a single-subject run says what is missing instead.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # the pipeline imports this module; avoid the cycle at import time
    from brainalign.config import Experiment, PartitionSpec
    from brainalign.config_analysis import CeilingSpec
    from brainalign.pipeline import FeatureSpace, StudyData

__all__ = [
    "EXTRA_TABLES",
    "check_extra_analyses",
    "extra_analyses",
    "layer_median_table",
    "best_layer_table",
    "repeat_ceiling_table",
    "subject_subset_ceiling_table",
    "normalised_score_tables",
    "study_ceiling_tables",
    "add_study_ceiling",
    "partition_dominance_table",
    "partition_vif_table",
    "partition_banded_table",
    "partition_control_tables",
    "coupling_tables",
    "instruction_text",
    "GROUP_TABLES",
    "group_analyses",
]

EXTRA_TABLES = ("layer_medians", "best_layer", "ceiling", "normalised_scores", "normalised_summary",
                "partition_dominance", "partition_vif", "partition_banded", "partition_controls",
                "partition_control_runs", "coupling", "coupling_similarity")


# --------------------------------------------------------------------------- config checks
def check_extra_analyses(exp: Experiment) -> None:
    """Checks that need more than one config section (called by the config validator).

    Raises
    ------
    ValueError
        Naming the field (``analysis.coupling...``) and the fix.
    """
    cpl = exp.analysis.coupling
    if cpl is None:
        return
    names = [m.name for m in exp.models]
    if cpl.model is not None and cpl.model not in names:
        raise ValueError(f"analysis.coupling.model={cpl.model!r} is not a model name; choose one of {names} or null.")
    if cpl.text_model is not None and cpl.text_model not in names:
        raise ValueError(f"analysis.coupling.text_model={cpl.text_model!r} is not a model name; choose one of "
                         f"{names} or null.")
    spec = _coupling_model(exp)
    text = next(m for m in exp.models if m.name == (cpl.text_model or spec.name))
    if getattr(text, "kind", "text") != "text":
        raise ValueError(f"analysis.coupling embeds the instruction texts with model {text.name!r}, which is "
                         f"kind {text.kind!r}; name a text model in analysis.coupling.text_model.")
    instructions = _instructions(exp, spec)
    if len(instructions) < 4:
        raise ValueError(
            f"analysis.coupling needs at least 4 prompts besides the unprompted one (an RSA over fewer than 6 "
            f"instruction pairs has no usable Mantel p-value); got {instructions}. Add prompts or set "
            "analysis.coupling: null."
        )


def _coupling_model(exp: Experiment):
    cpl = exp.analysis.coupling
    return next(m for m in exp.models if cpl.model in (None, m.name))


def _instructions(exp: Experiment, spec) -> list[str]:
    prompts = exp.prompts_of(spec) if hasattr(exp, "prompts_of") else exp.prompts
    return [p for p in prompts if p != exp.analysis.unprompted]


# --------------------------------------------------------------------------- entry point
def extra_analyses(
    exp: Experiment,
    data: StudyData,
    spaces: Sequence[FeatureSpace],
    tables: Mapping[str, pd.DataFrame],
    rois: Mapping[str, np.ndarray] | None = None,
    store=None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, pd.DataFrame]:
    """Every configured extra analysis of one subject's run.

    Parameters
    ----------
    exp : Experiment
    data : StudyData
    spaces : list of FeatureSpace
        Every fitted space (models, baselines, controls).
    tables : mapping
        The tables made so far: ``spaces``, ``voxel_scores`` and, with
        partitions, ``partition_voxels`` and ``partition``.
    rois : mapping ROI -> bool ndarray (n_voxels,), optional
    store : FeatureStore, optional
        Feature cache (the coupling embeds the instruction texts through it).
    log : callable
        Receives one line per skipped analysis (and the reason).

    Returns
    -------
    dict of table name -> DataFrame (names in :data:`EXTRA_TABLES`)
    """
    a = exp.analysis
    out: dict[str, pd.DataFrame] = {}
    space_table, vox = tables["spaces"], tables["voxel_scores"]
    subject = data.recording.subject
    if a.best_layer and (space_table.kind == "model").any():
        out["layer_medians"] = layer_median_table(vox, space_table, rois, subject)
        out["best_layer"] = best_layer_table(out["layer_medians"])
    out.update(_ceiling_for_run(exp, data, vox, log))
    by_name = {sp.name: sp for sp in spaces}
    dom, vif, banded, ctl_sum, ctl_runs = [], [], [], [], []
    alpha = a.controls.alpha if a.controls is not None else 0.05
    for spec in a.partitions:
        if spec.dominance and "partition_voxels" in tables:
            pv = tables["partition_voxels"]
            dom.append(partition_dominance_table(pv[pv.partition == spec.name], spec, rois))
            vif.append(partition_vif_table({n: by_name[n].X for n in spec.spaces}, spec))
        if spec.banded and "partition" in tables:
            pct = tables["partition"]
            banded.append(partition_banded_table(exp, data, by_name, spec, pct[pct.partition == spec.name]))
        if spec.control:
            s, r = partition_control_tables(exp, data, by_name, spec, alpha)
            ctl_sum.append(s)
            ctl_runs.append(r)
    for name, parts in (("partition_dominance", dom), ("partition_vif", vif), ("partition_banded", banded),
                        ("partition_controls", ctl_sum), ("partition_control_runs", ctl_runs)):
        if parts:
            out[name] = pd.concat(parts, ignore_index=True)
    if a.coupling is not None:
        out["coupling"], out["coupling_similarity"] = coupling_tables(exp, data.stimuli, vox, store,
                                                                      spaces=space_table)
    return out


# --------------------------------------------------------------------------- best layer (seed 002)
def layer_median_table(
    voxel_scores: pd.DataFrame, spaces: pd.DataFrame, masks: Mapping[str, np.ndarray] | None = None,
    subject: str = "01",
) -> pd.DataFrame:
    """Median held-out r over the voxels of every ROI, per model × prompt × layer (one subject).

    Parameters
    ----------
    voxel_scores : DataFrame (space, voxel, r)
    spaces : DataFrame (space, kind, model, prompt, layer, depth); only ``kind == "model"`` rows count
    masks : mapping ROI -> bool ndarray (n_voxels,), optional
        "all" (every voxel) is always included.
    subject : str

    Returns
    -------
    DataFrame with columns ``subject, model, prompt, roi, layer, depth, median_r, n_voxels``
    (concatenate the tables of several subjects before :func:`best_layer_table`).
    """
    ms = spaces[spaces.kind == "model"]
    wide = voxel_scores.pivot(index="voxel", columns="space", values="r")
    n_vox = len(wide)
    masks = {"all": np.ones(n_vox, dtype=bool), **{k: np.asarray(v, dtype=bool) for k, v in (masks or {}).items()}}
    rows = []
    for sp in ms.itertuples():
        if sp.space not in wide:
            continue
        r = wide[sp.space].to_numpy(dtype=np.float64)
        for roi, m in masks.items():
            if m.shape != (n_vox,):
                raise ValueError(f"masks[{roi!r}] has shape {m.shape}; it must be boolean over the {n_vox} voxels.")
            v = r[m & np.isfinite(r)]
            rows.append(dict(subject=str(subject), model=sp.model, prompt=sp.prompt, roi=roi, layer=int(sp.layer),
                             depth=float(sp.depth), median_r=float(np.median(v)) if v.size else np.nan,
                             n_voxels=int(v.size)))
    return pd.DataFrame(rows, columns=["subject", "model", "prompt", "roi", "layer", "depth", "median_r", "n_voxels"])


def best_layer_table(layer_medians: pd.DataFrame) -> pd.DataFrame:
    """Seed 002's brain score: median over voxels → median over subjects → max over layers.

    Parameters
    ----------
    layer_medians : DataFrame from :func:`layer_median_table`, one or several subjects

    Returns
    -------
    DataFrame with one row per model × prompt × ROI: ``model, prompt, roi, best_layer, best_depth, score``
    (group median at the best layer), ``mad`` (raw median absolute deviation of the subject medians there)
    and ``n_subjects``.
    """
    from brainalign.analysis.stats import mad

    need = {"subject", "model", "prompt", "roi", "layer", "depth", "median_r"}
    if not need <= set(layer_medians.columns):
        raise ValueError(f"layer_medians lacks columns {sorted(need - set(layer_medians.columns))}; pass the table "
                         "from layer_median_table (one per subject, concatenated).")
    rows = []
    for (model, prompt, roi), g in layer_medians.groupby(["model", "prompt", "roi"], sort=True):
        wide = g.pivot(index="subject", columns="layer", values="median_r")  # (subjects, layers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            group = np.nanmedian(wide.to_numpy(dtype=np.float64), axis=0)
        if not np.isfinite(group).any():
            continue
        k = int(np.nanargmax(group))
        layer = wide.columns[k]
        depth = g.loc[g.layer == layer, "depth"].iloc[0]
        rows.append(dict(model=model, prompt=prompt, roi=roi, best_layer=int(layer), best_depth=float(depth),
                         score=float(group[k]), mad=float(mad(wide[layer].to_numpy())), n_subjects=len(wide)))
    return pd.DataFrame(rows, columns=["model", "prompt", "roi", "best_layer", "best_depth", "score", "mad",
                                       "n_subjects"])


# --------------------------------------------------------------------------- noise ceilings
def repeat_ceiling_table(repeats, n_averaged: int = 1) -> pd.DataFrame:
    """Correlation-scale ceiling per voxel from repeated presentations of the scored stimuli.

    Parameters
    ----------
    repeats : ndarray of shape (n_repeats, n_samples, n_voxels)
        The held-out stimuli measured ``n_repeats`` >= 2 times.
    n_averaged : int
        Repeats averaged into the responses that the model is scored on. 1:
        ``sqrt`` of the bias-corrected explainable variance of one trial
        (voxelwise tutorials); k > 1: ``sqrt`` of NSD's noise ceiling for k
        averaged repeats (ncsnr).

    Returns
    -------
    DataFrame ``voxel, ceiling_r, ceiling_r2, method`` (ceiling_r NaN where the variance ceiling is <= 0).
    """
    from brainalign.analysis.ceiling import explainable_variance, ncsnr, ncsnr_noise_ceiling

    if int(n_averaged) < 1:
        raise ValueError(f"n_averaged must be >= 1, got {n_averaged}.")
    if int(n_averaged) == 1:
        c2 = explainable_variance(repeats)
        method = "repeats: explainable variance (bias-corrected, single trial)"
    else:
        c2 = ncsnr_noise_ceiling(ncsnr(np.asarray(repeats)), int(n_averaged))
        method = f"repeats: NSD ncsnr ceiling for {int(n_averaged)} averaged repeats"
    c2 = np.asarray(c2, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cr = np.where(c2 > 0, np.sqrt(np.where(c2 > 0, c2, 0.0)), np.nan)
    return pd.DataFrame(dict(voxel=np.arange(c2.size), ceiling_r=cr, ceiling_r2=c2, method=method))


def subject_subset_ceiling_table(
    responses: Mapping[str, np.ndarray],
    runs,
    test_runs,
    spec: CeilingSpec | None = None,
    alphas=np.logspace(-1, 5, 13),
    seed: int = 42,
) -> pd.DataFrame:
    """Inter-subject (subject-subset) noise ceiling of every subject, keyed by subject name.

    Parameters
    ----------
    responses : mapping subject -> ndarray of shape (n_samples, n_voxels_s)
        Every subject's responses on the same samples (rows aligned); at least 3
        subjects (two subset sizes are needed for the extrapolation).
    runs : ndarray of shape (n_samples,)
    test_runs : int or sequence of int
        Held-out runs the ceiling is scored on (the same the model scores use).
    spec : CeilingSpec, optional
        ``n_bootstrap`` and ``max_combinations`` (default: CeilingSpec()).
    alphas : ridge grid of the source → target maps
    seed : int

    Returns
    -------
    DataFrame ``subject, voxel, ceiling_r, v0_low, v0_high, tau, fallback, method``.
    """
    from brainalign.analysis.ceiling import subject_subset_ceiling
    from brainalign.config_analysis import CeilingSpec

    spec = spec or CeilingSpec(method="subject_subset")
    if not isinstance(responses, Mapping):
        raise ValueError("responses must be a mapping {subject: ndarray (n_samples, n_voxels)}.")
    if len(responses) < 3:
        raise ValueError(f"responses holds {len(responses)} subject(s) ({list(responses)}); the subject-subset "
                         "ceiling extrapolates over at least 2 source-subset sizes, so it needs >= 3 subjects.")
    names = list(responses)
    runs = np.asarray(runs)
    n_train = np.unique(runs[~np.isin(runs, np.atleast_1d(test_runs))]).size
    fit = subject_subset_ceiling([responses[s] for s in names], runs, test_runs, alphas=alphas,
                                 n_folds=min(3, n_train), max_combinations=spec.max_combinations,
                                 n_bootstrap=spec.n_bootstrap, seed=seed)
    fit["subject"] = [str(names[i]) for i in fit["subject"]]
    fit = fit.rename(columns={"v0": "ceiling_r"})
    fit["method"] = "subject_subset: v0 of v0·(1 − exp(−k/τ)), bootstrap median"
    return fit[["subject", "voxel", "ceiling_r", "v0_low", "v0_high", "tau", "fallback", "method"]]


def study_ceiling_tables(
    exp: Experiment,
    responses: Mapping[str, tuple[np.ndarray, np.ndarray]],
    voxel_scores: Mapping[str, pd.DataFrame],
) -> dict[str, dict[str, pd.DataFrame]]:
    """Subject-subset ceiling of every subject of a study, on the study's own outer folds, and normalised scores.

    For every outer fold (its test runs as held out), :func:`subject_subset_ceiling_table` is fitted; the
    ceiling of a voxel is the mean of its fold ceilings (leave-one-run-out costs one extrapolation per run).

    Parameters
    ----------
    exp : Experiment (``analysis.ceiling``, ``encoding``)
    responses : mapping subject -> (Y of shape (n_samples, n_voxels_s), runs of shape (n_samples,))
        Every subject on the same samples in the same order (same runs).
    voxel_scores : mapping subject -> DataFrame (space, voxel, r)

    Returns
    -------
    dict subject -> {``ceiling``, ``normalised_scores``, ``normalised_summary``}
    """
    from brainalign.pipeline import _outer_folds

    spec = exp.analysis.ceiling
    names = list(responses)
    runs = np.asarray(responses[names[0]][1])
    for s in names[1:]:
        other = np.asarray(responses[s][1])
        if other.shape != runs.shape or not np.array_equal(other, runs):
            raise ValueError(
                f"analysis.ceiling.method='subject_subset' needs every subject on the same samples, but subject "
                f"{s} has {other.size} samples in runs {np.unique(other).tolist()} and subject {names[0]} has "
                f"{runs.size} in {np.unique(runs).tolist()}; align the subjects' data or use method: none."
            )
    fits = []
    for _, test in _outer_folds(exp, runs):
        fits.append(subject_subset_ceiling_table({s: responses[s][0] for s in names}, runs, np.unique(runs[test]),
                                                 spec, exp.encoding.alphas, seed=exp.seed))
    allf = pd.concat(fits, ignore_index=True)
    ceiling = (allf.groupby(["subject", "voxel"], sort=False)
               .agg(ceiling_r=("ceiling_r", "mean"), v0_low=("v0_low", "mean"), v0_high=("v0_high", "mean"),
                    fallback=("fallback", "any"), method=("method", "first")).reset_index())
    ceiling["n_folds"] = len(fits)
    out = {}
    for s in names:
        c = ceiling[ceiling.subject == str(s)].drop(columns="subject").reset_index(drop=True)
        vox, summ = normalised_score_tables(voxel_scores[s], c, spec.threshold, spec.clip)
        out[s] = dict(ceiling=c, normalised_scores=vox, normalised_summary=summ)
    return out


def add_study_ceiling(exp: Experiment, responses: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      per_subject: Mapping[str, object], log: Callable[[str], None] = lambda s: None) -> None:
    """Add the subject-subset ceiling tables to every subject's Results (only with that method configured).

    Called once by :func:`brainalign.pipeline.run_study` after every subject ran; ``responses`` holds what
    :func:`study_ceiling_tables` needs (collected only when the method is ``subject_subset``).
    """
    spec = exp.analysis.ceiling
    if spec is None or spec.method != "subject_subset" or not responses:
        return
    if len(responses) < 3:
        msg = (f"analysis.ceiling.method='subject_subset' needs at least 3 subjects on the same stimuli; this "
               f"study has {len(responses)} ({list(responses)}), so no ceiling was computed. Add subjects or set "
               "method: none.")
        warnings.warn(msg, stacklevel=2)
        log(msg)
        return
    tables = study_ceiling_tables(exp, responses, {s: per_subject[s].tables["voxel_scores"] for s in responses})
    for s, t in tables.items():
        per_subject[s].tables.update(t)
    log(f"ceiling: subject-subset extrapolation for {len(tables)} subjects")


def normalised_score_tables(
    voxel_scores: pd.DataFrame, ceiling: pd.DataFrame, threshold: float = 0.05, clip: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ceiling-normalised voxel scores and their summary, with the convention in words.

    Parameters
    ----------
    voxel_scores : DataFrame (space, voxel, r[, subject])
    ceiling : DataFrame (voxel, ceiling_r[, subject])
        With a ``subject`` column in both, voxels are matched within subject.
    threshold, clip : see :func:`brainalign.analysis.normalise_scores`

    Returns
    -------
    voxels : DataFrame ``[subject,] space, voxel, r, ceiling_r, normalised``
    summary : DataFrame ``[subject,] space, mean_normalised, median_normalised, n_voxels, n_excluded, convention``
    """
    from brainalign.analysis.ceiling import normalisation_convention, normalise_scores

    keys = ["subject", "voxel"] if "subject" in voxel_scores and "subject" in ceiling else ["voxel"]
    missing = [c for c in keys + ["ceiling_r"] if c not in ceiling]
    if missing:
        raise ValueError(f"ceiling lacks columns {missing}; pass repeat_ceiling_table or "
                         "subject_subset_ceiling_table output.")
    m = voxel_scores.merge(ceiling[keys + ["ceiling_r"]], on=keys, how="left")
    m["normalised"] = normalise_scores(m["r"].to_numpy(), m["ceiling_r"].to_numpy(), threshold, clip)
    convention = normalisation_convention(threshold, clip, "ceiling_r")
    by = [k for k in ("subject",) if k in m] + ["space"]
    rows = []
    for key, g in m.groupby(by, sort=False):
        v = g["normalised"].to_numpy()
        ok = np.isfinite(v)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), "mean_normalised": float(v[ok].mean()) if ok.any() else np.nan,
                     "median_normalised": float(np.median(v[ok])) if ok.any() else np.nan,
                     "n_voxels": int(ok.sum()), "n_excluded": int((~ok).sum()), "convention": convention})
    cols = by[:-1] + ["space", "voxel", "r", "ceiling_r", "normalised"]
    return m[cols], pd.DataFrame(rows)


def _study_repeats(data: StudyData):
    rep = getattr(data, "repeats", None)
    if rep is None:
        rep = getattr(data.recording, "repeats", None)
    if rep is None and isinstance(getattr(data.recording, "meta", None), dict):
        rep = data.recording.meta.get("repeats")
    return rep


def _ceiling_for_run(exp: Experiment, data: StudyData, vox: pd.DataFrame, log) -> dict[str, pd.DataFrame]:
    spec = exp.analysis.ceiling
    if spec is None or spec.method == "none":
        return {}
    if spec.method == "subject_subset":
        subjects = getattr(exp.brain, "subject_list", None) or [exp.brain.subject]
        if len(subjects) > 1:  # computed across the study, after every subject: see add_study_ceiling
            return {}
        msg = ("analysis.ceiling.method='subject_subset' needs several subjects on the same stimuli; this run has "
               f"one ({data.recording.subject}), so no ceiling was computed. Run several subjects and pass their "
               "responses to brainalign.pipeline_analyses.subject_subset_ceiling_table, or set method: none.")
        warnings.warn(msg, stacklevel=3)
        log(msg)
        return {}
    repeats = _study_repeats(data)
    if repeats is None:
        msg = ("analysis.ceiling.method='repeats' needs repeated presentations of the held-out stimuli "
               "(StudyData.repeats, shape (n_repeats, n_samples, n_voxels)); this recording has none (a blocked "
               "single-presentation design such as the demo), so no ceiling was computed. Set method: none, or "
               "load a data set with test repeats.")
        warnings.warn(msg, stacklevel=3)
        log(msg)
        return {}
    ceiling = repeat_ceiling_table(repeats, spec.n_averaged)
    n_vox = int(vox["voxel"].max()) + 1
    if len(ceiling) != n_vox:
        raise ValueError(f"the repeats hold {len(ceiling)} voxels but the scores have {n_vox}; give repeats of "
                         "the same voxels (n_repeats, n_samples, n_voxels).")
    voxels, summary = normalised_score_tables(vox, ceiling, spec.threshold, spec.clip)
    return dict(ceiling=ceiling, normalised_scores=voxels, normalised_summary=summary)


# --------------------------------------------------------------------------- partitions
def _keys(spec: PartitionSpec) -> list[str]:
    return [f"s{i}" for i in range(len(spec.spaces))]


def partition_dominance_table(
    partition_voxels: pd.DataFrame, spec: PartitionSpec, masks: Mapping[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """General dominance of every space of one partition, summarised per ROI.

    Parameters
    ----------
    partition_voxels : DataFrame
        The partition's rows of the pipeline's ``partition_voxels`` table
        (columns ``r2_s0``, ``r2_s1``[, ``r2_s0_s1`` ...], ``r2_joint``).
    spec : PartitionSpec
    masks : mapping ROI -> bool ndarray (n_voxels,), optional ("all" is always included)

    Returns
    -------
    DataFrame ``partition, roi, space, key, mean_dominance, percent_of_joint, n_dominant, n_voxels``:
    over the voxels with ``r2_joint > spec.min_r2_joint``, the mean general dominance of the space,
    100 · mean dominance / mean joint R² (the spaces' percentages sum to 100), and how many voxels it dominates.
    """
    from brainalign.analysis.partition import dominance_analysis

    keys = _keys(spec)
    t = partition_voxels.reset_index(drop=True).copy()
    t.attrs["spaces"] = keys
    dom = dominance_analysis(t)
    joint = t["r2_joint"].to_numpy(dtype=np.float64)
    n = len(t)
    masks = {"all": np.ones(n, dtype=bool), **{k: np.asarray(v, dtype=bool) for k, v in (masks or {}).items()}}
    rows = []
    for roi, m in masks.items():
        if m.shape != (n,):
            raise ValueError(f"masks[{roi!r}] has shape {m.shape}; it must be boolean over the {n} voxels.")
        sel = m & np.isfinite(joint) & (joint > spec.min_r2_joint)
        for key, name in zip(keys, spec.spaces):
            d = dom[f"dominance_{key}"].to_numpy()[sel]
            rows.append(dict(partition=spec.name, roi=roi, space=name, key=key,
                             mean_dominance=float(d.mean()) if d.size else np.nan,
                             percent_of_joint=float(100 * d.mean() / joint[sel].mean()) if d.size else np.nan,
                             n_dominant=int((dom["dominant"].to_numpy()[sel] == key).sum()),
                             n_voxels=int(sel.sum())))
    return pd.DataFrame(rows)


def partition_vif_table(features: Mapping[str, np.ndarray], spec: PartitionSpec) -> pd.DataFrame:
    """Variance inflation between the spaces of one partition, after PCA within each space.

    Each space (TR-wise features, z-scored) keeps at most ``spec.vif_components``
    components and never more than its numerical rank (a rank-deficient space
    would otherwise bring zero-variance components with meaningless VIFs).

    Returns
    -------
    DataFrame ``partition, space, component, vif``.
    """
    from brainalign.analysis.partition import feature_space_vif

    prepared = {}
    for name in spec.spaces:
        X = np.asarray(features[name], dtype=np.float64)
        sd = X.std(0)
        Z = (X - X.mean(0)) / np.where(sd > 0, sd, 1.0)
        U, s, _ = np.linalg.svd(Z, full_matrices=False)
        rank = int((s > s[0] * 1e-6).sum()) if s.size and s[0] > 0 else 0
        if rank == 0:
            raise ValueError(f"analysis.partitions[{spec.name}]: space {name!r} has zero variance; drop it.")
        k = min(spec.vif_components, rank)
        prepared[name] = U[:, :k] * s[:k]  # the space's own leading components; the PCA below keeps them
    vif = feature_space_vif(prepared, n_components=spec.vif_components)
    vif.insert(0, "partition", spec.name)
    return vif


def _partition_fold(exp, Y, runs, by_name, names, train, test, method="ridge"):
    """One outer fold of a partition, prepared as :func:`brainalign.pipeline.partition_spaces` does."""
    from brainalign.analysis.partition import variance_partition
    from brainalign.pipeline import _delays, prepare_design

    prepared = {}
    for i, name in enumerate(names):
        Xtr, Xte = prepare_design(by_name[name].X, runs, train, test, [0], exp.timing.pca_components)
        Z = np.zeros((Y.shape[0], Xtr.shape[1]), dtype=np.float32)
        Z[train], Z[test] = Xtr, Xte
        prepared[f"s{i}"] = Z
    used = np.sort(np.concatenate([train, test]))
    sub = {k: v[used] for k, v in prepared.items()}
    return variance_partition(sub, Y[used], runs[used], np.unique(runs[test]).tolist(), exp.encoding.alphas,
                              len(np.unique(runs[train])), delays=_delays(exp), method=method, seed=exp.seed)


def _check_names(spec: PartitionSpec, by_name, names, what="spaces"):
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"analysis.partitions[{spec.name}].{what} names {missing}, which were not fitted; "
                         f"choose from {sorted(by_name)}.")


def partition_banded_table(
    exp: Experiment, data: StudyData, by_name: Mapping[str, FeatureSpace], spec: PartitionSpec,
    ridge_percentages: pd.DataFrame,
) -> pd.DataFrame:
    """The partition refitted with banded ridge (one penalty per space) beside the plain-ridge percentages.

    Returns
    -------
    DataFrame ``partition, part, space, aggregation, percent_ridge, percent_banded, difference, n_voxels``
    (whole brain; percentages of the joint R² as in the ``partition`` table).
    """
    from brainalign.analysis.partition import partition_percentages
    from brainalign.pipeline import _outer_folds

    _check_names(spec, by_name, spec.spaces)
    Y, runs = data.recording.data, data.recording.runs
    tables = [_partition_fold(exp, Y, runs, by_name, spec.spaces, tr, te, "banded") for tr, te in _outer_folds(exp, runs)]
    cols = [c for c in tables[0].columns if c != "voxel"]
    mean = pd.DataFrame({c: np.mean([t[c].to_numpy() for t in tables], 0) for c in cols})
    pct = partition_percentages(mean, None, spec.min_r2_joint)
    ridge = ridge_percentages[["part", "aggregation", "percent", "space"]].rename(columns={"percent": "percent_ridge"})
    pct = pct.rename(columns={"percent": "percent_banded"}).drop(columns="roi")
    m = ridge.merge(pct, on=["part", "aggregation"], how="right")
    m["difference"] = m["percent_banded"] - m["percent_ridge"]
    m.insert(0, "partition", spec.name)
    return m[["partition", "part", "space", "aggregation", "percent_ridge", "percent_banded", "difference", "n_voxels"]]


def _per_run_folds(exp, runs):
    """(train, test) pairs with exactly one held-out run each, training runs as in the outer CV."""
    from brainalign.pipeline import _outer_folds

    out = []
    for train, test in _outer_folds(exp, runs):
        for run in np.unique(runs[test]):
            out.append((int(run), train, test[runs[test] == run]))
    return out


def partition_control_tables(
    exp: Experiment, data: StudyData, by_name: Mapping[str, FeatureSpace], spec: PartitionSpec, alpha: float = 0.05,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unique variance of a partition space vs the same partition with a control in its place (issue 11).

    For every held-out run (training runs as in the outer CV), the partition
    is fitted twice: with the space, and with its control (e.g. the
    stimulus-shuffled or scrambled-prompt version) in its place. The unit of
    the paired test is the held-out run; its value is the mean over all voxels
    of ``unique_<space>`` (held-out R², negatives kept).

    Returns
    -------
    summary : DataFrame ``partition, space, control, mean_effect, mean_control, mean_diff, sem_diff, n_better, n,
        cohen_dz, p`` (two-sided paired Wilcoxon), ``p_t``, ``survives`` (mean_diff > 0 and p < alpha)
    runs : DataFrame ``partition, space, control, run, unique_effect, unique_control, joint_effect, joint_control``
    """
    from brainalign.analysis.summary import paired_test
    from brainalign.pipeline import resolve_space_name

    fitted = list(by_name.values())
    control = {resolve_space_name(k, fitted): resolve_space_name(v, fitted) for k, v in spec.control.items()}
    _check_names(spec, by_name, spec.spaces)
    _check_names(spec, by_name, list(control.values()), "control")
    unknown = [k for k in control if k not in spec.spaces]
    if unknown:
        raise ValueError(f"analysis.partitions[{spec.name}].control names {unknown}, which are not its spaces "
                         f"{spec.spaces}.")
    Y, runs = data.recording.data, data.recording.runs
    folds = _per_run_folds(exp, runs)
    rows, summary = [], []
    for space, ctl in control.items():
        i = spec.spaces.index(space)
        swapped = [ctl if n == space else n for n in spec.spaces]
        per_run = []
        for run, train, test in folds:
            eff = _partition_fold(exp, Y, runs, by_name, spec.spaces, train, test)
            con = _partition_fold(exp, Y, runs, by_name, swapped, train, test)
            per_run.append(dict(partition=spec.name, space=space, control=ctl, run=run,
                                unique_effect=float(np.mean(eff[f"unique_s{i}"])),
                                unique_control=float(np.mean(con[f"unique_s{i}"])),
                                joint_effect=float(np.mean(eff["r2_joint"])),
                                joint_control=float(np.mean(con["r2_joint"]))))
        t = pd.DataFrame(per_run)
        res = paired_test(t["unique_effect"].to_numpy(), t["unique_control"].to_numpy())
        summary.append(dict(partition=spec.name, space=space, control=ctl, mean_effect=t["unique_effect"].mean(),
                            mean_control=t["unique_control"].mean(), mean_diff=res["mean_diff"],
                            sem_diff=res["sem_diff"], n_better=res["n_better"], n=res["n"], cohen_dz=res["cohen_dz"],
                            p=res["p_wilcoxon"], p_t=res["p_t"],
                            survives=bool(res["mean_diff"] > 0 and np.isfinite(res["p_wilcoxon"])
                                          and res["p_wilcoxon"] < alpha)))
        rows.append(t)
    return pd.DataFrame(summary), pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------- instruction coupling (seed 001)
def instruction_text(template: str) -> str:
    """The instruction of a prompt template: the text without the ``{stimulus}`` slot."""
    return " ".join(template.replace("{stimulus}", " ").split())


def coupling_tables(
    exp: Experiment, stimuli: Sequence[str], voxel_scores: pd.DataFrame, store=None, extractor=None,
    spaces: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed 001's instruction-semantics coupling for the configured model and layer.

    Instructions are the model's prompts other than ``analysis.unprompted``;
    their texts (template without the stimulus slot) are embedded by
    ``coupling.text_model`` (default: the model) at ``coupling.text_layer``;
    their alignment maps are the voxelwise held-out r of
    ``<model>/<prompt>/L<layer>``. ``spaces`` (the spaces table) is needed
    when the text model is another model.

    Returns
    -------
    coupling : DataFrame with one row ``model, layer, text_layer, method, r, p_value, n_instructions, n_pairs``
    similarity : DataFrame ``prompt_a, prompt_b, text_similarity, map_similarity`` (upper triangle)
    """
    from brainalign.analysis.compare import instruction_semantics_coupling
    from brainalign.features.base import resolve_layers
    from brainalign.features.store import FeatureStore
    from brainalign.pipeline import make_extractor

    check_extra_analyses(exp)
    cpl = exp.analysis.coupling
    spec = _coupling_model(exp)
    text_spec = next(m for m in exp.models if m.name == (cpl.text_model or spec.name))
    ex = extractor or make_extractor(text_spec)
    n_layers = ex.n_layers
    if text_spec is not spec:  # the coupling model's depth, from its fitted spaces (depth = layer / n_layers)
        if spaces is None:
            raise ValueError("coupling_tables needs the spaces table when the text model differs from the "
                             "coupling model.")
        ms = spaces[(spaces.kind == "model") & (spaces.model == spec.name) & (spaces.depth > 0)]
        if ms.empty:
            raise ValueError(f"analysis.coupling.model={spec.name!r} has no fitted layers.")
        n_layers = int(round(ms.layer.iloc[0] / ms.depth.iloc[0]))
    layer = resolve_layers([cpl.layer], n_layers)[0]
    text_layer = resolve_layers([cpl.text_layer], ex.n_layers)[0]
    prompts = _instructions(exp, spec)
    wide = voxel_scores.pivot(index="voxel", columns="space", values="r")
    names = [f"{spec.name}/{p}/L{layer}" for p in prompts]
    missing = [n for n in names if n not in wide]
    if missing:
        raise ValueError(f"analysis.coupling.layer={cpl.layer!r} is layer {layer}, but {missing} were not fitted; "
                         f"choose a layer listed in models[{spec.name}].layers.")
    maps = wide[names].to_numpy(dtype=np.float64).T  # (n_instructions, n_voxels)
    templates = exp.prompts_of(spec) if hasattr(exp, "prompts_of") else exp.prompts
    texts = [instruction_text(templates[p]) for p in prompts]
    emb = np.asarray(ex.embed_cached(texts, [text_layer], store or FeatureStore()))[:, 0, :]
    res = instruction_semantics_coupling(emb, maps, method=cpl.method, n_permutations=cpl.n_permutations,
                                         seed=exp.seed, labels=prompts)
    coupling = pd.DataFrame([dict(model=spec.name, layer=layer, text_layer=text_layer, method=res["method"],
                                  r=res["r"], p_value=res["p_value"], n_instructions=res["n_instructions"],
                                  n_pairs=res["n_pairs"])])
    St, Sm = res["text_similarity"], res["map_similarity"]
    sim = [dict(prompt_a=a, prompt_b=b, text_similarity=float(St.loc[a, b]), map_similarity=float(Sm.loc[a, b]))
           for i, a in enumerate(prompts) for b in prompts[i + 1:]]
    return coupling, pd.DataFrame(sim)


# --------------------------------------------------------------------------- several subjects
GROUP_TABLES = ("group_scores", "group_comparisons", "group_prompt_gain", "group_roi_scores", "group_roi_comparisons",
                "group_best_layer")


def group_analyses(exp: Experiment, per_subject: Mapping[str, object]) -> dict[str, pd.DataFrame]:
    """Across-subject tables from several subjects' :class:`~brainalign.results.Results` of one experiment.

    Complements :func:`brainalign.group.group_results`: each subject's ``run_scores``, ``roi_scores`` and
    ``layer_medians`` get a ``subject`` column and are aggregated with
    :func:`brainalign.analysis.group.group_tables` — run → subject (mean over held-out runs) → group
    (``analysis.group_how``, with SEM and MAD), paired Wilcoxon *and* t across subjects with both effect sizes
    (d_z, rank-biserial) against ``analysis.reference`` and for every prompt against ``analysis.unprompted`` —
    and ``layer_medians`` give seed 002's group best layer (median voxels → median subjects → max layer).

    Parameters
    ----------
    exp : Experiment
        Its ``analysis`` section rules the aggregation.
    per_subject : mapping subject -> Results (at least 2)

    Returns
    -------
    dict with (as the inputs allow) ``group_scores``, ``group_comparisons``, ``group_prompt_gain``,
    ``group_roi_scores``, ``group_roi_comparisons``, ``group_best_layer``.
    """
    from brainalign.analysis.group import group_tables
    from brainalign.pipeline import resolve_space_name

    if len(per_subject) < 2:
        raise ValueError(f"per_subject holds {len(per_subject)} subject(s); group tables need at least 2.")
    a = exp.analysis

    def stacked(name):
        parts = [r.tables[name].assign(subject=str(s)) for s, r in per_subject.items() if name in r.tables]
        return pd.concat(parts, ignore_index=True) if len(parts) == len(per_subject) else None

    spaces = stacked("spaces")
    spaces = spaces.drop(columns="subject").drop_duplicates("space", ignore_index=True) if spaces is not None else None
    reference = resolve_space_name(a.reference, spaces) if spaces is not None else a.reference
    out = group_tables(run_scores=stacked("run_scores"), roi_scores=stacked("roi_scores"), spaces=spaces,
                       reference=reference, unprompted=a.unprompted, metric=a.metric, how=a.group_how)
    med = stacked("layer_medians")
    if med is not None:
        out["group_best_layer"] = best_layer_table(med)
    return out
