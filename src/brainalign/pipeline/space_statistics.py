"""What the tables keep of one feature space's held-out predictions, and its checkpoint entry.

:func:`brainalign.pipeline.runner.cross_validate_statistics` fits the spaces one after the other; when a space's
last outer fold is in, :func:`space_voxel_scores` and :func:`brainalign.analysis.roi_scores.held_out_run_r`
compute everything the tables need from its (n_rows, n_voxels) predictions, which are then dropped. In a resumable run the result goes into one
checkpoint entry per space (:func:`statistics_entry`; a few float64 numbers per voxel) and the space's
(space, fold) entries, which hold its predictions, are deleted: the work folder holds one space's predictions at
a time too. :func:`restore_statistics` reads an entry back into the very same rows, bit for bit.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainalign.analysis.metrics import pearson_r
from brainalign.analysis.stats import fdr_bh, permutation_test

__all__ = ["space_voxel_scores", "statistics_entry", "restore_statistics", "pearson_r_by_blocks"]

#: voxels per block when held-out predictions are scored (pearson_r works in float64 on whole columns: a block
#: bounds its copies at 4 × 8 × n_rows × VOXEL_BLOCK bytes instead of 4 × 8 × n_rows × n_voxels)
VOXEL_BLOCK = 4096

_RUN_INTS = ("run", "n_voxels", "n_responsive")
_RUN_FLOATS = ("mean_r", "median_r", "mean_r_responsive")


def pearson_r_by_blocks(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """:func:`brainalign.analysis.metrics.pearson_r` over blocks of voxel columns: the same numbers (each column
    is reduced over its rows in the same order), a bounded working set.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_rows, n_voxels)

    Returns
    -------
    r : ndarray of shape (n_voxels,), float64
    """
    n_vox = y_true.shape[1]
    if n_vox <= VOXEL_BLOCK:
        return pearson_r(y_true, y_pred)
    return np.concatenate([pearson_r(y_true[:, s:s + VOXEL_BLOCK], y_pred[:, s:s + VOXEL_BLOCK])
                           for s in range(0, n_vox, VOXEL_BLOCK)])


def _voxel_frame(name: str, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The voxel-table rows of one space from its columns (``r, p, q, significant`` [``, p_fwer, significant_fwer``])."""
    first = ("r", "p", "q", "significant")
    frame = pd.DataFrame(dict(space=name, voxel=np.arange(columns["r"].size), **{k: columns[k] for k in first}))
    for k in ("p_fwer", "significant_fwer"):
        if k in columns:
            frame[k] = columns[k]
    return frame


def space_voxel_scores(analysis, is_items: bool, seed: int, Y: np.ndarray, runs: np.ndarray, name: str,
                       P: np.ndarray) -> pd.DataFrame:
    """One space's rows of the voxel table: r over all held-out rows, block-permutation p, BH-FDR (and FWER).

    Parameters
    ----------
    analysis : AnalysisSpec
        ``n_permutations``, ``block_length``, ``fdr_q``, ``fwer_alpha``.
    is_items : bool
        Item data: rows are exchangeable (blocks of 1).
    seed : int
        Seed of the permutations (the same for every space).
    Y : ndarray of shape (n_rows, n_voxels)
    runs : ndarray of shape (n_rows,)
    name : str
    P : ndarray of shape (n_rows, n_voxels)
        The space's held-out predictions; rows never held out are NaN.

    Returns
    -------
    DataFrame with columns ``space, voxel, r, p, q, significant`` (and ``p_fwer, significant_fwer`` with
    ``analysis.fwer_alpha``); p and q are NaN when ``analysis.n_permutations`` is 0.
    """
    a = analysis
    held = np.isfinite(P).all(1)
    if held.all():  # every row held out (the usual case): no (n_rows, n_voxels) copies of Y and P
        y_held, p_held, runs_held = Y, P, runs
    else:
        y_held, p_held, runs_held = Y[held], P[held], runs[held]
    out = {}
    if a.n_permutations > 0:
        block = 1 if is_items else a.block_length  # items are exchangeable
        r, p, *fwer = permutation_test(y_held, p_held, runs_held, block_length=block,
                                       n_permutations=a.n_permutations, metric="r", seed=seed,
                                       return_fwer=a.fwer_alpha is not None)
        significant, q = fdr_bh(p, a.fdr_q)
        p_fwer = fwer[0] if fwer else None
    else:
        r = pearson_r_by_blocks(y_held, p_held)
        p = q = np.full(r.size, np.nan)
        significant = np.zeros(r.size, dtype=bool)
        p_fwer = None
    out = dict(r=r, p=p, q=q, significant=significant)
    if a.fwer_alpha is not None:  # max-statistic family-wise error over voxels, next to BH-FDR
        out["p_fwer"] = p_fwer if p_fwer is not None else np.full(r.size, np.nan)
        out["significant_fwer"] = out["p_fwer"] < a.fwer_alpha
    return _voxel_frame(name, out)


def statistics_entry(frame: pd.DataFrame, rows: list[dict], alphas: np.ndarray,
                     run_r: dict[int, np.ndarray] | None, selections: list[np.ndarray] | None) -> dict[str, np.ndarray]:
    """The arrays of one space's checkpoint entry (stored exactly: :func:`restore_statistics` gives the same rows).

    Parameters
    ----------
    frame : the space's voxel-table rows (:func:`space_voxel_scores`)
    rows : its run-score rows (one dict per held-out run)
    alphas : ndarray (n_folds, n_voxels), its chosen alphas
    run_r : dict run -> r, or None without ROIs (:func:`brainalign.analysis.roi_scores.held_out_run_r`)
    selections : the responsive voxels of every fold (the reference space only), or None
    """
    out = {f"col_{k}": frame[k].to_numpy() for k in frame.columns if k not in ("space", "voxel")}
    out.update({f"row_{k}": np.array([row[k] for row in rows], dtype=np.int64) for k in _RUN_INTS})
    out.update({f"row_{k}": np.array([row[k] for row in rows], dtype=np.float64) for k in _RUN_FLOATS})
    out["alphas"] = alphas
    if run_r is not None:
        out["roi_runs"] = np.array(list(run_r), dtype=np.int64)
        out["roi_r"] = np.stack(list(run_r.values())) if run_r else np.zeros((0, frame.shape[0]))
    for fold, sel in enumerate(selections or []):
        out[f"selection_{fold:04d}"] = sel
    return out


def restore_statistics(name: str, entry: dict[str, np.ndarray]):
    """``(frame, rows, alphas, run_r, selections)`` of one space from its :func:`statistics_entry` arrays."""
    cols = {k[4:]: v for k, v in entry.items() if k.startswith("col_")}
    frame = _voxel_frame(name, cols)
    n = entry["row_run"].size
    rows = [dict(space=name, run=int(entry["row_run"][i]), mean_r=float(entry["row_mean_r"][i]),
                 median_r=float(entry["row_median_r"][i]), mean_r_responsive=float(entry["row_mean_r_responsive"][i]),
                 n_voxels=int(entry["row_n_voxels"][i]), n_responsive=int(entry["row_n_responsive"][i]))
            for i in range(n)]
    run_r = None
    if "roi_runs" in entry:
        run_r = {int(run): entry["roi_r"][i] for i, run in enumerate(entry["roi_runs"])}
    selections = [entry[k] for k in sorted(entry) if k.startswith("selection_")] or None
    return frame, rows, entry["alphas"], run_r, selections
