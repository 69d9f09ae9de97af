"""Which voxels (or vertices) of a recording can be analysed: the one exclusion rule every loader applies.

A voxel that is constant within a run (outside the brain, a zeroed medial
wall) or non-finite anywhere cannot be z-scored per run; loaders drop it and
say so, with :func:`varying_voxels`, and shrink a volume mask to the kept
voxels with :func:`mask_of_kept`.
"""
from __future__ import annotations

from typing import Sequence

import nibabel as nib
import numpy as np

__all__ = ["varying_voxels", "mask_of_kept"]


def varying_voxels(
    run_sds: Sequence[np.ndarray],
    source: str,
    *,
    run_names: Sequence[str] | None = None,
    unit: str = "mask voxels",
    within: str = "a run",
    hint: str = "",
) -> tuple[np.ndarray, str | None]:
    """Keep-mask of the voxels with a finite, non-zero standard deviation in every run, and the warning to give.

    Parameters
    ----------
    run_sds : sequence of ndarray of shape (n_voxels,)
        Per run (or movie), the standard deviation of every voxel over that
        run's TRs (NaN or inf where the run holds a non-finite value).
    source : str
        What was read, named at the start of the message (the file, or subject and task).
    run_names : sequence of str, optional
        One name per entry of ``run_sds`` (e.g. the run's file); the message
        then says how many voxels each run excludes (at most five runs listed).
    unit : str
        What a column is, in the message ("mask voxels", "vertices").
    within : str
        What the standard deviation was taken over, in the message ("a run", "a movie").
    hint : str
        Likely cause, appended in parentheses (e.g. "medial wall?").

    Returns
    -------
    keep : bool ndarray of shape (n_voxels,)
        True for voxels usable in every run.
    message : str or None
        None when nothing is excluded; otherwise "<source>: <k> <unit> are constant within <within> or
        non-finite (<k> of <n>; …); they are excluded from the analysis."
    """
    bad = [~(np.isfinite(sd) & (sd > 0)) for sd in run_sds]
    if not bad:
        raise ValueError(f"{source}: no runs to check; give one standard-deviation vector per run.")
    keep = ~np.logical_or.reduce(bad)
    dropped = int((~keep).sum())
    if not dropped:
        return keep, None
    details = [f"{dropped} of {keep.size}"]
    if run_names is not None:
        per_run = [(name, int(b.sum())) for name, b in zip(run_names, bad) if b.any()]
        details.append(", ".join(f"{name}: {k}" for name, k in per_run[:5])
                       + (f", and {len(per_run) - 5} more runs" if len(per_run) > 5 else ""))
    if hint:
        details.append(hint)
    return keep, (f"{source}: {dropped} {unit} are constant within {within} or non-finite ({'; '.join(details)}); "
                  "they are excluded from the analysis.")


def mask_of_kept(mask: np.ndarray, keep: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """The volume mask of the kept voxels.

    Parameters
    ----------
    mask : ndarray of shape (x, y, z)
        The mask the recording's columns came from (non-zero voxels, in C order).
    keep : bool ndarray of shape (n_mask_voxels,)
        Which of those columns stay (from :func:`varying_voxels`).
    affine : ndarray of shape (4, 4)

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask whose non-zero voxels, in C order, are the kept columns.
    """
    mask = np.asarray(mask) != 0
    flat = np.flatnonzero(mask.ravel(order="C"))
    if keep.shape != flat.shape:
        raise ValueError(f"keep has {keep.size} entries but the mask has {flat.size} voxels; give one per mask voxel.")
    new = np.zeros(mask.size, dtype=np.uint8)
    new[flat[keep]] = 1
    return nib.Nifti1Image(new.reshape(mask.shape, order="C"), affine)
