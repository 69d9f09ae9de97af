"""Run an experiment: data → features → TR grid → cross-validated ridge → scores.

Each stage is a function of its inputs (and the feature cache), so stages can
be tested and reused one by one:

``load_data`` → ``build_feature_spaces`` → ``cross_validate`` → ``summarise``.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from brainalign._utils.errors import ConfigError, DataError
from brainalign.analysis.arms import arm_tables
from brainalign.analysis.equivalence import equivalence_table
from brainalign.analysis.summary import compare_to_reference, layer_table, prompt_gain_table
from brainalign.brain.recording import Recording
from brainalign.config import Experiment, resolve_path
from brainalign.pipeline.controls import control_pairs_for_models, control_spaces, controls_table
from brainalign.encoding.design import design_delays, prepare_design
from brainalign.encoding.estimators import RidgeCV
from brainalign.encoding.splits import leave_one_run_out, outer_folds
from brainalign.features.store import FeatureStore
from brainalign.encoding.held_out import HeldOut
from brainalign.features import models as feature_models
from brainalign.features.models import make_extractor  # noqa: F401 (re-exported)
from brainalign.report.results import Results
from brainalign.pipeline.extras import extra_analyses
from brainalign.pipeline.partitions import fold_settings, partition_fold, partition_roi_table
from brainalign.pipeline.space_statistics import (pearson_r_by_blocks, restore_statistics, space_voxel_scores,
                                                  statistics_entry)
from brainalign.pipeline.checks import with_expanded_data_root
from brainalign.study.data import Progress, StudyData, no_progress
from brainalign.study.load import load_subject
from brainalign.timing.spaces import FeatureSpace, build_feature_spaces, resolved_names, unknown_space_hint
from brainalign.pipeline.workers import FitTask, run_fits

__all__ = ["StudyData", "FeatureSpace", "load_data", "model_features", "build_feature_spaces", "cross_validate",
           "cross_validate_statistics", "voxel_scores", "run",
           "run_subject", "run_study", "make_extractor", "load_roi_masks", "roi_tables"]



def responsive_voxels(cv_scores: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the ``fraction`` of voxels best explained in inner cross-validation.

    Parameters
    ----------
    cv_scores : ndarray of shape (n_voxels,) or (n_alphas, n_voxels)
        Inner-CV scores on training runs only (so the selection never sees
        test data); with one row per alpha the best alpha counts.
    fraction : float in (0, 1]
    """
    scores = np.asarray(cv_scores, dtype=np.float64)
    best = np.nan_to_num(scores.max(0) if scores.ndim == 2 else scores, nan=-np.inf)
    n = max(1, int(round(fraction * best.size)))
    return np.sort(np.argsort(-best, kind="stable")[:n])


def _fit_predict(exp: Experiment, X: np.ndarray, Y: np.ndarray, runs: np.ndarray, train, test):
    Xtr, Xte = prepare_design(X, runs, train, test, design_delays(exp.timing, exp.is_items), exp.timing.pca_components)
    model = RidgeCV(alphas=exp.encoding.alphas, cv=leave_one_run_out(runs[train]), fit_intercept=False,
                    blas_threads=exp.encoding.blas_threads, backend=exp.encoding.backend)
    model.fit(Xtr, Y[train])
    return np.asarray(model.predict(Xte), dtype=np.float32), model


def _fit_arrays(exp: Experiment, X: np.ndarray, Y: np.ndarray, runs: np.ndarray, train, test) -> dict:
    """One (space, fold) fit as plain arrays (what checkpoints store and workers send back)."""
    P, model = _fit_predict(exp, X, Y, runs, train, test)
    return dict(P=P, best_alphas=np.asarray(model.best_alphas_), cv_scores=np.asarray(model.cv_scores_))


def _encode_space_by_space(
    exp: Experiment, data: StudyData, spaces: list[FeatureSpace], progress: Progress, checkpoint,
    buffer: Callable[[str], np.ndarray], finished: Callable[..., None], restored: dict | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The nested CV of :func:`cross_validate`, one feature space after the other (reference first).

    Each space's held-out predictions go into ``buffer(name)`` (an (n_rows, n_voxels) float32 array of NaN) fold
    by fold; ``finished(name, P, rows, alphas, selections)`` is called once the space's last fold is in (its
    run-score rows, its (n_folds, n_voxels) chosen alphas, and for the reference the responsive voxels of every
    fold), so the caller can compute what it needs from the whole held-out series of that space and let it go
    before the next space starts. The fits run in this space-major order (on the workers too); each fit is a pure
    function of its inputs, so the order changes no number.

    ``restored`` maps spaces finished by an interrupted run to their ``(rows, alphas, selections)``: they are not
    fitted again (their folds count as loaded in ``checkpoint``).

    Returns
    -------
    run_scores : DataFrame (see :func:`cross_validate`)
    best_alphas : dict space -> ndarray (n_folds, n_voxels)
    """
    restored = restored or {}
    Y = data.recording.data
    runs = data.recording.runs
    folds = outer_folds(exp.encoding, runs)
    by_name = {sp.name: sp for sp in spaces}
    ref = exp.analysis.reference
    if ref not in by_name:
        raise ConfigError(f"analysis.reference='{ref}' is not a feature space; {unknown_space_hint(ref, by_name)}"
                          f"choose one of {sorted(by_name)}.")
    order = [by_name[ref]] + [sp for sp in spaces if sp.name != ref]
    chosen: dict[str, np.ndarray] = {}
    selections: list[np.ndarray] = list(restored[ref][2]) if ref in restored else []  # per fold, the reference's
    rows = []
    tick = progress("encoding", len(spaces) * len(folds))
    y_digest = checkpoint.digest(Y) if checkpoint is not None else None  # once, not per fit

    def tasks():  # one space's X at a time: made for its first fold, dropped once its last fold is fitted
        for sp in order:
            if sp.name in restored:
                continue
            X = sp.X
            for fold, (train, test) in enumerate(folds):
                yield FitTask(sp.name, fold, _fit_arrays, (exp, X, Y, runs, train, test),
                              inputs=(X, y_digest, train, test))
            del X

    fitted = run_fits(  # in this order, on encoding.n_workers processes
        tasks(),
        n_workers=exp.encoding.n_workers, scheduler=exp.encoding.scheduler, blas_threads=exp.encoding.blas_threads,
        checkpoint=checkpoint)
    for sp in order:
        if sp.name in restored:
            space_rows, chosen[sp.name], _ = restored[sp.name]
            rows += space_rows
            if checkpoint is not None:
                checkpoint.loaded += [(sp.name, fold) for fold in range(len(folds))]
            for _ in folds:
                tick()
            continue
        held_out = buffer(sp.name)
        space_rows, alphas = [], []
        for fold, (train, test) in enumerate(folds):
            res = next(fitted)
            if sp is order[0]:
                selections.append(responsive_voxels(res["cv_scores"], exp.analysis.responsive_fraction))
            selection = selections[fold]
            held_out[test] = res["P"]
            alphas.append(res["best_alphas"])
            for run in np.unique(runs[test]):
                sel = test[runs[test] == run]
                r = pearson_r_by_blocks(Y[sel], held_out[sel])
                space_rows.append(
                    dict(space=sp.name, run=int(run), mean_r=float(np.nanmean(r)),
                         median_r=float(np.nanmedian(r)), mean_r_responsive=float(np.nanmean(r[selection])),
                         n_voxels=int(np.isfinite(r).sum()), n_responsive=int(selection.size))
                )
            tick()
        chosen[sp.name] = np.stack(alphas)
        rows += space_rows
        finished(sp.name, held_out, space_rows, chosen[sp.name], selections if sp is order[0] else None)
        del held_out  # before the next space's buffer is allocated: one space at a time
    run_scores = pd.DataFrame(rows).sort_values(["space", "run"], ignore_index=True)
    return run_scores, {sp.name: chosen[sp.name] for sp in order}


def cross_validate(
    exp: Experiment, data: StudyData, spaces: list[FeatureSpace], progress: Progress = no_progress,
    checkpoint=None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Nested run-wise CV: outer held-out runs, inner leave-one-run-out alpha choice.

    The reference space is fitted first; in every outer fold its inner-CV
    scores (training runs only) define the fold's *responsive voxels*, the
    same set for every space, so paired comparisons stay fair and test data
    never choose voxels. Then the other spaces, one after the other.

    This keeps every space's held-out predictions (n_spaces × n_rows × n_voxels float32, memory-mapped past
    ``encoding.predictions_in_memory_gib``). :func:`run_subject` does not: it uses
    :func:`cross_validate_statistics`, which keeps one space's at a time and gives the same tables.

    Returns
    -------
    run_scores : DataFrame
        One row per space × held-out run: mean_r, median_r (all voxels),
        mean_r_responsive (responsive voxels), n_voxels.
    predictions : dict space → ndarray (n_trs, n_voxels)
        Held-out predictions (TRs never held out are NaN).
    best_alphas : dict space → ndarray (n_folds, n_voxels)

    With ``checkpoint`` (a :class:`brainalign.pipeline.checkpoint.EncodingCheckpoint`),
    every finished (space, fold) fit is stored, and read back instead of
    refitted when the run is resumed. With ``encoding.n_workers`` > 1 (or
    ``encoding.scheduler``) the fits run on dask workers
    (:func:`brainalign.pipeline.workers.run_fits`); results are used in the same
    order, so the tables are identical.
    """
    ref = exp.analysis.reference
    names = [ref] + [sp.name for sp in spaces if sp.name != ref] if ref in {sp.name for sp in spaces} else []
    preds = HeldOut(names, data.recording.data.shape, exp.encoding.predictions_in_memory_gib)
    run_scores, best_alphas = _encode_space_by_space(exp, data, spaces, progress, checkpoint,
                                                     buffer=preds.__getitem__, finished=lambda *a: None)
    return run_scores, preds, best_alphas


def cross_validate_statistics(
    exp: Experiment, data: StudyData, spaces: list[FeatureSpace], progress: Progress = no_progress,
    checkpoint=None, masks: dict[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], tuple[pd.DataFrame, dict] | None]:
    """:func:`cross_validate` and the statistics of the held-out predictions, one feature space at a time.

    Each space's voxel statistics (:func:`voxel_scores`) and ROI run scores
    (:func:`brainalign.analysis.roi_scores.roi_run_scores`) are computed as soon as its last outer fold is
    fitted, by the same functions on the same arrays as from :func:`cross_validate`'s predictions (so the tables
    are identical, bit for bit); then its predictions are dropped. Memory and TMPDIR hold one space's
    held-out predictions (n_rows × n_voxels float32; memory-mapped past ``encoding.predictions_in_memory_gib``)
    whatever the number of spaces.

    With ``checkpoint``, a finished space's statistics are stored as one entry (stage ``statistics``,
    :mod:`brainalign.pipeline.space_statistics`) and its (space, fold) entries, which hold its predictions, are
    deleted, so the work folder too holds one space's predictions at a time; a resumed run reads the entry back
    (same bytes) instead of fitting the space again.

    Parameters
    ----------
    masks : dict ROI -> bool ndarray (n_voxels,), optional
        ROIs for the run-level ROI scores (none: no ROI scores).

    Returns
    -------
    run_scores : DataFrame, as :func:`cross_validate`
    voxel_table : DataFrame, as :func:`voxel_scores`
    best_alphas : dict space -> ndarray (n_folds, n_voxels)
    roi : (scores, voxel_r) as :func:`brainalign.analysis.roi_scores.roi_run_scores`, or None without masks
    """
    from brainalign.analysis.roi_scores import held_out_run_r, roi_scores_from_r

    Y, runs = data.recording.data, data.recording.runs
    how = exp.brain.rois.how if exp.brain.rois is not None else "mean"
    frames, voxel_r = {}, {}
    tick = progress("statistics", len(spaces))
    current: list[HeldOut] = []
    stats_ck, digests, restored = None, {}, {}
    by_name = {sp.name: sp for sp in spaces}
    if checkpoint is not None and exp.analysis.reference in by_name:
        stats_ck = checkpoint.for_stage("statistics", "space")
        folds = outer_folds(exp.encoding, runs)
        common = (checkpoint.digest(Y), by_name[exp.analysis.reference].X, *[i for f in folds for i in f])
        for sp in spaces:  # an entry is reused only for the same features, data, folds and reference
            digests[sp.name] = checkpoint.digest(sp.X, *common)
            got = stats_ck.lookup(sp.name, 0, digests[sp.name])
            if got is not None:
                frame, rows, alphas, run_r, selections = restore_statistics(sp.name, got)
                if (run_r is None) == (not masks):
                    frames[sp.name] = frame
                    if masks:
                        voxel_r[sp.name] = run_r
                    restored[sp.name] = (rows, alphas, selections)
        del common  # the reference's X: the fits make it again when its turn comes
        if exp.analysis.reference not in restored:  # the other spaces' run scores need its selections
            restored = {}
        for name in restored:
            tick()

    def buffer(name: str) -> np.ndarray:
        current.append(HeldOut([name], Y.shape, exp.encoding.predictions_in_memory_gib))
        return current[-1][name]

    def finished(name: str, P: np.ndarray, rows: list[dict], alphas: np.ndarray, selections) -> None:
        frames[name] = space_voxel_scores(exp.analysis, exp.is_items, exp.seed, Y, runs, name, P)
        if masks:  # as roi_run_scores, r by voxel blocks
            voxel_r[name] = held_out_run_r(Y, runs, P, pearson_r_by_blocks)
        current.pop().close()  # this space's predictions (and its memory map, if any) go now
        if stats_ck is not None:
            stats_ck.put(name, 0, dict(statistics_entry(frames[name], rows, alphas, voxel_r.get(name) if masks
                                                        else None, selections), _inputs=np.array(digests[name])))
            for fold in range(len(alphas)):  # its predictions are in the entry's statistics now
                checkpoint.discard(name, fold)
        tick()

    try:
        run_scores, best_alphas = _encode_space_by_space(exp, data, spaces, progress, checkpoint, buffer, finished,
                                                         restored)
    finally:
        while current:
            current.pop().close()
    order = list(best_alphas)
    roi = None
    if masks:
        voxel_r = {name: voxel_r[name] for name in order}
        roi = (pd.concat([roi_scores_from_r({name: voxel_r[name]}, masks, how) for name in order],
                         ignore_index=True), voxel_r)
    return run_scores, pd.concat([frames[name] for name in order], ignore_index=True), best_alphas, roi


def voxel_scores(
    exp: Experiment, data: StudyData, predictions: dict[str, np.ndarray], progress: Progress = no_progress
) -> pd.DataFrame:
    """Per space and voxel: r over all held-out TRs, block-permutation p and BH-FDR decision.

    Returns
    -------
    DataFrame with columns space, voxel, r, p, q, significant (p and q are NaN
    when ``analysis.n_permutations`` is 0).
    """
    Y, runs = data.recording.data, data.recording.runs
    rows = []
    tick = progress("statistics", len(predictions))
    for name, P in predictions.items():
        tick()
        rows.append(space_voxel_scores(exp.analysis, exp.is_items, exp.seed, Y, runs, name, P))
    return pd.concat(rows, ignore_index=True)


def partition_spaces(
    exp: Experiment, data: StudyData, spaces: list[FeatureSpace], progress: Progress = no_progress,
    checkpoint=None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Unique and shared variance of the configured feature-space pairs/triples, per voxel.

    In each outer fold every space is scaled and reduced with training-run
    statistics (as in :func:`cross_validate`), then
    :func:`brainalign.analysis.variance_partition` fits every subset model with
    per-voxel alphas from leave-one-run-out CV on the training runs and scores
    held-out R². Fold results are averaged per voxel; negative parts are kept.

    With ``checkpoint`` (an :class:`brainalign.pipeline.checkpoint.EncodingCheckpoint`), each
    finished (partition, fold) is stored in its ``partition`` stage and read back
    when the run is resumed; ``encoding.n_workers`` spreads them over workers
    as in :func:`cross_validate`.

    Returns
    -------
    voxels : DataFrame (partition, voxel, r2_<s>…, r2_joint, unique_<s>…, shared…, dominant)
        Space names are replaced by s0, s1(, s2) in column names; see ``percentages.space``.
    percentages : DataFrame (partition, roi, part, space, aggregation, percent, n_voxels)
    """
    from brainalign.analysis.partition import partition_percentages

    by_name = {sp.name: sp for sp in spaces}
    Y, runs = data.recording.data, data.recording.runs
    folds = outer_folds(exp.encoding, runs)
    specs = exp.analysis.partitions
    for spec in specs:
        missing = [n for n in spec.spaces if n not in by_name]
        if missing:
            raise ConfigError(f"analysis.partitions[{spec.name}] names spaces {missing} that were not fitted; "
                              f"{unknown_space_hint(missing[0], by_name)}choose from {sorted(by_name)}.")
    tick = progress("partition", len(folds) * len(specs))
    if checkpoint is not None:
        checkpoint = checkpoint.for_stage("partition", "(partition, fold)")
    y_digest = checkpoint.digest(Y) if checkpoint is not None else None
    settings = fold_settings(exp)

    def tasks():  # one partition's spaces at a time
        for spec in specs:
            Xs = [by_name[name].X for name in spec.spaces]
            for fold, (train, test) in enumerate(folds):
                yield FitTask(spec.name, fold, partition_fold, (Xs, Y, runs, train, test, *settings),
                              inputs=(*Xs, y_digest, train, test))
            del Xs

    fitted = run_fits(tasks(), n_workers=exp.encoding.n_workers, scheduler=exp.encoding.scheduler,
                      blas_threads=exp.encoding.blas_threads, checkpoint=checkpoint)
    vox_tables, pct_tables = [], []
    for spec in specs:
        keys = [f"s{i}" for i in range(len(spec.spaces))]
        tables = []
        for _ in folds:
            tables.append(next(fitted))
            tick()
        cols = [c for c in tables[0] if c != "voxel"]
        mean = pd.DataFrame({c: np.mean([t[c] for t in tables], 0) for c in cols})
        parts = [c for c in cols if c.startswith(("unique_", "shared"))]
        mean["dominant"] = np.where(mean["r2_joint"] > 0, mean[parts].idxmax(axis=1), "none")
        pct = partition_percentages(mean, None, spec.min_r2_joint)
        legend = dict(zip(keys, spec.spaces))
        pct["space"] = [" + ".join(legend[k] for k in part.split("_")[1:]) if part != "shared" else "shared"
                        for part in pct["part"]]
        mean.insert(0, "voxel", np.arange(len(mean)))
        mean.insert(0, "partition", spec.name)
        pct.insert(0, "partition", spec.name)
        vox_tables.append(mean)
        pct_tables.append(pct)
    return pd.concat(vox_tables, ignore_index=True), pd.concat(pct_tables, ignore_index=True)


def load_roi_masks(exp: Experiment, recording: Recording, base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """ROI masks over the recording's voxels (``brain.rois``): label image → labels → groups.

    Returns
    -------
    dict ROI name -> bool ndarray of shape (n_voxels,), in the recording's voxel order
    (empty when no ROIs are configured).

    Raises
    ------
    ValueError
        When the label image is not on the mask's grid, or a group or the hierarchy names an unknown label/ROI
        (the message lists the available ones).
    """
    from brainalign.analysis.roi_scores import combine_roi_masks
    from brainalign.brain.atlas import load_label_image, load_label_table, roi_masks

    spec = exp.brain.rois
    if spec is None:
        return {}
    if spec.surface_labels is not None:  # [left, right] label files on the recording's mesh
        return _with_hierarchy(surface_roi_masks(spec, recording, base_dir), spec)
    if spec.image is None:  # the dataset's own ROI files, read by the loader (format nsd: brain.options.rois)
        files = recording.meta.get("rois") or {}
        labels = {name: m for by_label in files.values() for name, m in by_label.items()}
        if not labels:
            raise ConfigError("brain.rois has no image, and the loader read no ROI files; list them in "
                              "brain.options.rois (format nsd) or give brain.rois.image and brain.rois.table.")
        masks = combine_roi_masks(labels, {}, spec.groups)
        return _with_hierarchy(masks, spec)
    if recording.mask_img is None:
        raise ConfigError("brain.rois.image needs a volume recording with a mask image; a surface recording takes "
                          "brain.rois.surface_labels (left and right label files on its mesh).")
    import nibabel as nib

    img = nib.load(resolve_path(spec.image, base_dir))
    mask = np.asarray(recording.mask_img.dataobj) != 0
    if img.shape[:3] != mask.shape or not np.allclose(img.affine, recording.mask_img.affine, atol=1e-3):
        raise DataError(f"brain.rois.image has shape {img.shape} (affine differs: "
                         f"{not np.allclose(img.affine, recording.mask_img.affine, atol=1e-3)}) but the mask has "
                         f"shape {mask.shape}; resample the atlas to the BOLD grid "
                         "(nilearn.image.resample_to_img, interpolation='nearest').")
    table = spec.table
    table = load_label_table(table if isinstance(table, dict) else resolve_path(table, base_dir))
    labels, _ = load_label_image(img)
    labels = labels.reshape(mask.shape)
    present = roi_masks(labels, table, brain_mask=mask)
    if spec.groups is not None:
        for roi, members in spec.groups.items():
            for lab in members:
                if isinstance(lab, str) and lab not in table.values():
                    raise ConfigError(f"brain.rois.groups[{roi!r}] names label {lab!r}, which is not in the label "
                                     f"table; available: {sorted(table.values())}.")
    return _with_hierarchy(combine_roi_masks(present, table, spec.groups), spec)


def surface_roi_masks(spec, recording: Recording, base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """ROI masks over a surface recording's columns from ``brain.rois.surface_labels``.

    The two files' labels are concatenated (left, right), restricted to the recording's kept vertices
    (``recording.meta['kept_vertices']``) and joined by ``brain.rois.groups``.

    Returns
    -------
    dict ROI name -> bool ndarray of shape (n_vertices_kept,)
    """
    from brainalign.analysis.roi_scores import combine_roi_masks
    from brainalign.brain.atlas import load_label_table, load_surface_labels, roi_masks

    n_vertices = tuple(getattr(recording, "n_vertices", ()) or ())
    if not n_vertices:
        raise ConfigError("brain.rois.surface_labels need a surface recording (format movie10); this recording has "
                          "no mesh vertices.")
    labels, table = load_surface_labels([resolve_path(p, base_dir) for p in spec.surface_labels])
    if labels.size != sum(n_vertices):
        raise DataError(f"brain.rois.surface_labels hold {labels.size} vertices but the recording's mesh has "
                        f"{sum(n_vertices)} (= {n_vertices[0]} + {n_vertices[1]}); use label files of the same "
                        f"mesh ({getattr(recording, 'space', 'surface')}).")
    if spec.table is not None:
        table = load_label_table(spec.table if isinstance(spec.table, dict) else resolve_path(spec.table, base_dir))
    kept = recording.meta.get("kept_vertices")
    labels = labels if kept is None else labels[np.asarray(kept, dtype=np.int64)]
    present = roi_masks(labels, table)
    return combine_roi_masks(present, table, spec.groups)


def _with_hierarchy(masks: dict[str, np.ndarray], spec) -> dict[str, np.ndarray]:
    """``masks``, after checking that ``brain.rois.hierarchy`` names only ROIs with voxels."""
    missing = [r for r in (spec.hierarchy or []) if r not in masks]
    if missing:
        raise ConfigError(f"brain.rois.hierarchy names {missing}, which are not ROIs with voxels in the mask; "
                         f"available: {sorted(masks)}.")
    return masks


def roi_tables(
    exp: Experiment, data: StudyData, space_table: pd.DataFrame, predictions: dict[str, np.ndarray],
    masks: dict[str, np.ndarray], layers: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Per-ROI tables: run-level scores, comparisons with the reference, layer curves, peaks, prompt gain, slope.

    Returns
    -------
    dict with ``roi_scores`` (space, roi, run, value, n_voxels), ``roi_comparisons``, ``roi_layers``,
    ``roi_peaks`` and, with ``analysis.unprompted``, ``roi_gain`` and (with ``brain.rois.hierarchy``)
    ``roi_hierarchy``.
    """
    from brainalign.analysis.roi_scores import roi_run_scores

    how = exp.brain.rois.how if exp.brain.rois is not None else "mean"
    scores, voxel_r = roi_run_scores(data.recording.data, data.recording.runs, predictions, masks, how)
    return _roi_tables_from_scores(exp, space_table, scores, voxel_r, masks, layers)


def _roi_tables_from_scores(
    exp: Experiment, space_table: pd.DataFrame, scores: pd.DataFrame, voxel_r: dict, masks: dict[str, np.ndarray],
    layers: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """:func:`roi_tables` from the run-level ROI scores (``roi_run_scores``'s two outputs)."""
    from brainalign.analysis.roi_scores import roi_comparisons, roi_gain_tables, roi_layer_tables, roi_prompt_table

    spec = exp.brain.rois
    how = spec.how if spec is not None else "mean"
    out = dict(roi_scores=scores, roi_comparisons=roi_comparisons(scores, exp.analysis.reference))
    out["roi_layers"], out["roi_peaks"] = roi_layer_tables(voxel_r, space_table, masks, how)
    prompts = roi_prompt_table(scores, space_table)
    if len(prompts):  # the best instruction per ROI
        out["roi_prompts"] = prompts
    if exp.analysis.unprompted is not None and (space_table.kind == "model").any():
        gain, slope = roi_gain_tables(
            scores, space_table, exp.analysis.unprompted, spec.hierarchy if spec is not None else None,
            spec.early if spec is not None else None, spec.late if spec is not None else None, layers,
        )
        out["roi_gain"] = gain
        if len(slope):
            out["roi_hierarchy"] = slope
    return out


def load_data(exp: Experiment, base_dir: Path | None = None, subject: str | None = None,
              data_root: Path | None = None) -> StudyData:
    """The first (or the named) subject's data (:func:`brainalign.study.load.load_subject` with the config's sections)."""
    return load_subject(exp.brain, exp.stimuli, exp.encoding, exp.seed, subject or exp.brain.subject_list[0],
                        base_dir, data_root)


def model_features(exp: Experiment, data: StudyData | list[str], store: FeatureStore,
                   progress: Progress = no_progress, base_dir: Path | None = None):
    """The features stage with the config's sections (:func:`brainalign.features.models.model_features`)."""
    return feature_models.model_features(exp.models, exp.prompts, exp.stimuli, exp.seed, data, store, progress,
                                         base_dir)


def run(
    exp: Experiment,
    base_dir: Path | None = None,
    store: FeatureStore | None = None,
    progress: Progress = no_progress,
    log: Callable[[str], None] = lambda s: None,
    checkpoint=None,
    data_root: Path | None = None,
) -> Results:
    """Run every stage for the first (usually the only) subject; see :func:`run_study` for several."""
    t0 = time.perf_counter()
    exp = with_expanded_data_root(exp, base_dir, data_root)
    data = load_data(exp, base_dir, data_root=data_root)
    return run_subject(exp, data, base_dir, store, progress, log, checkpoint, load_seconds=time.perf_counter() - t0)


def run_study(
    exp: Experiment,
    base_dir: Path | None = None,
    store: FeatureStore | None = None,
    progress: Progress = no_progress,
    log: Callable[[str], None] = lambda s: None,
    checkpoint=None,
    data_root: Path | None = None,
) -> tuple[dict[str, Results], Results | None]:
    """Every subject of ``brain.subjects`` one after the other, then group tables across subjects.

    Returns
    -------
    per_subject : dict subject -> Results
    group : Results or None
        With several subjects: tables of every subject stacked (``subject`` column) and the across-subject
        comparisons of :func:`brainalign.pipeline.group.group_tables`; None for one subject.
    """
    from brainalign.pipeline.group import group_results

    from brainalign.pipeline.extras import add_study_ceiling

    exp = with_expanded_data_root(exp, base_dir, data_root)
    out, responses, masks = {}, {}, {}
    subjects = exp.brain.subject_list
    keep = len(subjects) > 1 and exp.analysis.ceiling is not None and exp.analysis.ceiling.method == "subject_subset"
    for subject in subjects:
        t0 = time.perf_counter()
        data = load_data(exp, base_dir, subject, data_root)
        ck = checkpoint if checkpoint is None or len(subjects) == 1 else type(checkpoint)(checkpoint.root / f"sub-{subject}")
        log(f"subject {subject}")
        out[subject] = run_subject(exp, data, base_dir, store, progress, log, ck,
                                   load_seconds=time.perf_counter() - t0)
        if keep:  # the inter-subject ceiling needs every subject's responses
            responses[subject] = (data.recording.data, data.recording.runs)
            masks[subject] = load_roi_masks(exp, data.recording, base_dir)  # per-ROI normalised scores
    add_study_ceiling(exp, responses, out, log, masks)
    return out, (group_results(exp, out) if len(subjects) > 1 else None)


def run_subject(
    exp: Experiment,
    data: StudyData,
    base_dir: Path | None = None,
    store: FeatureStore | None = None,
    progress: Progress = no_progress,
    log: Callable[[str], None] = lambda s: None,
    checkpoint=None,
    load_seconds: float = 0.0,
) -> Results:
    """Run every stage on one subject's data and return the results (nothing is written; see ``Results.save``).

    ``checkpoint`` (optional :class:`brainalign.pipeline.checkpoint.EncodingCheckpoint`) makes the encoding resumable.
    """
    timings = {}
    t0 = time.perf_counter()
    rois = load_roi_masks(exp, data.recording, base_dir)
    timings["load"] = load_seconds + time.perf_counter() - t0
    rows = "items" if data.is_items else "TRs"
    groups = "item folds" if data.is_items else "runs"
    blocks = f"; {len(data.events)} stimulus blocks" if data.events is not None else f"; {len(data.stimuli)} stimuli"
    log(f"brain: {data.recording.data.shape[0]} {rows} × {data.recording.n_voxels} voxels, "
        f"{len(np.unique(data.recording.runs))} {groups}{blocks}")
    store = store or FeatureStore()
    t0 = time.perf_counter()
    feats, model_meta = model_features(exp, data, store, progress, base_dir)
    timings["features"] = time.perf_counter() - t0
    log(f"features: {store.hits} cached, {store.misses} computed")
    spaces = build_feature_spaces(data, feats, model_meta, exp.models, exp.analysis.baselines, exp.seed)
    as_given = exp  # results record the config as given
    exp = exp.model_copy(update=dict(analysis=resolved_names(exp.analysis, spaces)))
    extra, control_pairs = control_spaces(exp, data, feats, model_meta, store, base_dir=base_dir)
    spaces = spaces + extra
    control_pairs = control_pairs_for_models(exp, spaces) + control_pairs
    t0 = time.perf_counter()
    # each space's voxel statistics and ROI run scores as soon as its folds are fitted: one space's predictions
    # in memory (or TMPDIR) at a time
    run_scores, vox, best_alphas, roi_scores = cross_validate_statistics(exp, data, spaces, progress, checkpoint,
                                                                         rois)
    if checkpoint is not None:
        log(checkpoint.summary())
    timings["encoding"] = time.perf_counter() - t0  # the voxel statistics included
    t0 = time.perf_counter()
    # geometric mean over outer folds of each voxel's chosen alpha (NaN for excluded voxels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (excluded voxels) stay NaN
        log_alpha = {k: np.nanmean(np.log(np.asarray(v, dtype=np.float64)), 0) for k, v in best_alphas.items()}
    vox["alpha"] = np.exp(np.concatenate([log_alpha[name] for name in best_alphas]))
    space_table = pd.DataFrame([s.info() for s in spaces])
    comparisons = compare_to_reference(run_scores, exp.analysis.reference, exp.analysis.metric)
    tables = dict(
        spaces=space_table,
        run_scores=run_scores,
        voxel_scores=vox,
        comparisons=comparisons,
        layers=layer_table(run_scores, space_table, exp.analysis.metric),
    )
    if exp.analysis.equivalence:  # TOST between sets of spaces, paired over held-out runs
        tables["equivalence"] = equivalence_table(run_scores, exp.analysis.equivalence, exp.analysis.metric)
    tables.update(arm_tables(exp.analysis, run_scores, space_table, unit="run"))  # row 6's arms, over runs
    if exp.analysis.unprompted is not None and exp.models:
        tables["prompt_gain"] = prompt_gain_table(run_scores, space_table, exp.analysis.unprompted, exp.analysis.metric)
    if control_pairs:
        alpha = exp.analysis.controls.alpha if exp.analysis.controls is not None else 0.05
        tables["controls"] = controls_table(run_scores, control_pairs, exp.analysis.metric, alpha)
    if rois:
        tables.update(_roi_tables_from_scores(exp, space_table, *roi_scores, rois, tables["layers"]))
    if exp.analysis.partitions:
        tables["partition_voxels"], tables["partition"] = partition_spaces(exp, data, spaces, progress, checkpoint)
        if checkpoint is not None:
            log(checkpoint.for_stage("partition", "(partition, fold)").summary())
        if rois:
            tables["partition_rois"] = partition_roi_table(tables["partition_voxels"], tables["partition"],
                                                           exp.analysis.partitions, rois)
    tables.update(extra_analyses(exp, data, spaces, tables, rois, store, log))
    timings["analysis"] = time.perf_counter() - t0
    return Results(
        experiment=as_given,
        tables=tables,
        recording=data.recording,
        inputs=data.input_files,
        model_meta=model_meta,
        timings=timings,
        feature_cache=dict(root=str(store.root), hits=store.hits, misses=store.misses),
    )
