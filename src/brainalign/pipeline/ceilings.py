"""Noise-ceiling tables of ``analysis.ceiling`` (repeats or subject subsets) and ceiling-normalised scores.

Called by :func:`brainalign.pipeline.extras.extra_analyses` (one subject) and by the
multi-subject driver (:func:`add_study_ceiling`, with a mapping ``subject -> responses``).
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np
import pandas as pd

from brainalign._utils.errors import ConfigError
from brainalign.encoding.splits import outer_folds

if TYPE_CHECKING:
    from brainalign.config import Experiment
    from brainalign.config.analysis import CeilingSpec
    from brainalign.study.data import StudyData

__all__ = ["repeat_ceiling_table", "ncsnr_ceiling_table", "roi_normalised_tables", "subject_subset_ceiling_table", "study_ceiling_tables", "add_study_ceiling",
           "normalised_score_tables"]

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
    return _ceiling_frame(c2, method)


def _ceiling_frame(c2, method: str) -> pd.DataFrame:
    """``voxel, ceiling_r, ceiling_r2, method`` from a variance-scale ceiling (r NaN where it is <= 0)."""
    c2 = np.asarray(c2, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        cr = np.where(c2 > 0, np.sqrt(np.where(c2 > 0, c2, 0.0)), np.nan)
    return pd.DataFrame(dict(voxel=np.arange(c2.size), ceiling_r=cr, ceiling_r2=c2, method=method))


def ncsnr_ceiling_table(snr, n_averaged: int = 3) -> pd.DataFrame:
    """Correlation-scale ceiling per voxel from a dataset's noise-ceiling SNR (NSD's ``ncsnr.nii.gz``).

    Parameters
    ----------
    snr : ndarray of shape (n_voxels,)
        ncsnr = σ_signal / σ_noise of single trials, over the recording's voxels.
    n_averaged : int
        Repeats averaged into the scored responses (NSD: 3 for the shared test images).

    Returns
    -------
    DataFrame ``voxel, ceiling_r, ceiling_r2, method`` (as :func:`repeat_ceiling_table`).
    """
    from brainalign.analysis.ceiling import ncsnr_noise_ceiling

    return _ceiling_frame(ncsnr_noise_ceiling(snr, int(n_averaged)),
                          f"ncsnr: the dataset's noise ceiling for {int(n_averaged)} averaged repeats")


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
    from brainalign.config.analysis import CeilingSpec

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
    for _, test in outer_folds(exp.encoding, runs):
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
                      per_subject: Mapping[str, object], log: Callable[[str], None] = lambda s: None,
                      rois: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> None:
    """Add the subject-subset ceiling tables to every subject's Results (only with that method configured).

    Called once by :func:`brainalign.pipeline.runner.run_study` after every subject ran; ``responses`` holds what
    :func:`study_ceiling_tables` needs (collected only when the method is ``subject_subset``). ``rois`` (subject ->
    ROI -> bool mask over the subject's voxels) adds ``roi_ceilings`` and ``roi_normalised`` per subject.
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
        if rois and rois.get(s):
            t["roi_ceilings"], t["roi_normalised"] = roi_normalised_tables(t["normalised_scores"], rois[s])
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


def ceiling_tables_for_run(exp: Experiment, data: StudyData, vox: pd.DataFrame, log) -> dict[str, pd.DataFrame]:
    spec = exp.analysis.ceiling
    if spec is None or spec.method == "none":
        return {}
    if spec.method == "subject_subset":
        subjects = getattr(exp.brain, "subject_list", None) or [exp.brain.subject]
        if len(subjects) > 1:  # computed across the study, after every subject: see add_study_ceiling
            return {}
        msg = ("analysis.ceiling.method='subject_subset' needs several subjects on the same stimuli; this run has "
               f"one ({data.recording.subject}), so no ceiling was computed. Run several subjects and pass their "
               "responses to brainalign.pipeline.extras.subject_subset_ceiling_table, or set method: none.")
        warnings.warn(msg, stacklevel=3)
        log(msg)
        return {}
    if spec.method == "ncsnr":  # the dataset's own ncsnr (NSD), read by the loader
        snr = data.recording.meta.get("ncsnr")
        if snr is None:
            raise ConfigError("analysis.ceiling.method='ncsnr' needs the dataset's ncsnr volume; set "
                              "brain.options.ncsnr: true (format nsd).")
        ceiling = ncsnr_ceiling_table(snr, spec.n_averaged)
        voxels, summary = normalised_score_tables(vox, ceiling, spec.threshold, spec.clip)
        return dict(ceiling=ceiling, normalised_scores=voxels, normalised_summary=summary)
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


def roi_normalised_tables(normalised: pd.DataFrame, masks: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ceilings and ceiling-normalised scores per ROI (the NSD study's row 14: higher visual ~0.8, early ~0.6).

    Parameters
    ----------
    normalised : DataFrame ``space, voxel, r, ceiling_r, normalised`` (from :func:`normalised_score_tables`)
    masks : mapping ROI -> bool ndarray (n_voxels,)

    Returns
    -------
    ceilings : DataFrame ``roi, ceiling, n_voxels`` (mean correlation-scale ceiling over the ROI's voxels with a
        finite ceiling; drawn behind the ROI bars)
    scores : DataFrame ``space, roi, mean_normalised, median_normalised, mean_r, n_voxels`` (voxels whose
        normalised score is defined, i.e. ceiling above the threshold)
    """
    first = normalised[normalised.space == normalised.space.iloc[0]].sort_values("voxel")
    ceil = first["ceiling_r"].to_numpy(dtype=np.float64)
    crow, srow = [], []
    for roi, m in masks.items():
        ok = m & np.isfinite(ceil)
        crow.append(dict(roi=roi, ceiling=float(ceil[ok].mean()) if ok.any() else np.nan, n_voxels=int(ok.sum())))
    for space, g in normalised.groupby("space", sort=False):
        g = g.sort_values("voxel")
        v, r = g["normalised"].to_numpy(dtype=np.float64), g["r"].to_numpy(dtype=np.float64)
        for roi, m in masks.items():
            ok = m & np.isfinite(v)
            srow.append(dict(space=space, roi=roi, mean_normalised=float(v[ok].mean()) if ok.any() else np.nan,
                             median_normalised=float(np.median(v[ok])) if ok.any() else np.nan,
                             mean_r=float(r[ok].mean()) if ok.any() else np.nan, n_voxels=int(ok.sum())))
    return pd.DataFrame(crow), pd.DataFrame(srow)
