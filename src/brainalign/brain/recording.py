"""The common in-memory form of an fMRI recording, and the NIfTI loader.

Every loader returns a :class:`Recording`: a (n_TR, n_voxels) float32 matrix
with the run of every TR, the TR, and the mask that maps columns back to
the volume.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nilearn import masking, signal

from brainalign._utils.errors import DataError
from brainalign.brain.voxels import mask_of_kept, varying_voxels

__all__ = ["Recording", "load_nifti_recording"]


@dataclass
class Recording:
    """Voxel time series of one subject, runs concatenated.

    Attributes
    ----------
    data : ndarray of shape (n_trs, n_voxels), float32
    runs : ndarray of shape (n_trs,), int
        Run label of every TR (runs contiguous).
    tr : float
        Repetition time in seconds.
    mask_img : nibabel.Nifti1Image
        Mask whose non-zero voxels, in C order, are the columns of ``data``.
    subject : str
    dropped_voxels : int
        Voxels of the mask removed because they were constant or non-finite.
    meta : dict
        Loader-specific provenance (files read, confounds used, ...).
    space : str
        Where the columns live: ``"volume"`` (``mask_img`` maps them back),
        or a surface such as ``"fsaverage6"`` (``mask_img`` is None and the
        columns are vertices, left hemisphere first).
    run_ids : tuple of str
        Name of every run label, in order of ``np.unique(runs)``
        (e.g. ``"task-gameplay_run-01"`` or ``"bourne"``); empty if unnamed.
    n_vertices : tuple of int
        Surface data only: vertices per hemisphere (left, right) before
        dropping; empty for volumes.
    """

    data: np.ndarray
    runs: np.ndarray
    tr: float
    mask_img: nib.Nifti1Image | None
    subject: str = "01"
    dropped_voxels: int = 0
    meta: dict = field(default_factory=dict)
    space: str = "volume"
    run_ids: tuple = ()
    n_vertices: tuple = ()

    @property
    def n_voxels(self) -> int:
        return self.data.shape[1]

    def unmask(self, values: np.ndarray) -> nib.Nifti1Image:
        """Put one value per voxel back into the volume (NaN outside the mask)."""
        if self.mask_img is None:
            raise DataError(f"this recording is on the {self.space} surface; it has no volume mask to unmask into.")
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (self.n_voxels,):
            raise DataError(f"values must have shape ({self.n_voxels},), got {values.shape}.")
        return masking.unmask(values, self.mask_img)


def _check_image(img: nib.spatialimages.SpatialImage, path: Path, ndim: int) -> None:
    if img.ndim != ndim:
        raise DataError(f"{path}: expected a {ndim}-D image, got shape {img.shape}.")


def load_nifti_recording(
    bold: str | Path,
    mask: str | Path,
    runs: np.ndarray,
    tr: float,
    subject: str = "01",
    detrend: bool = True,
    standardize: bool = True,
) -> Recording:
    """Load a 4-D BOLD image inside a mask, cleaned run by run.

    Parameters
    ----------
    bold : path
        4-D NIfTI, shape (x, y, z, n_trs).
    mask : path
        3-D NIfTI with the same shape and affine as one volume of ``bold``.
    runs : ndarray of shape (n_trs,)
        Run label of every volume.
    tr : float
        Repetition time (s); checked against the header when it states one.
    detrend, standardize : bool
        Linear detrending / z-scoring within each run (nilearn.signal.clean).

    Returns
    -------
    Recording

    Raises
    ------
    ValueError
        Shape/affine mismatch between image and mask, a run vector of the
        wrong length, or a TR that contradicts the header.
    """
    bold, mask = Path(bold), Path(mask)
    for p in (bold, mask):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: file not found; check the path in the config.")
    img = nib.load(bold)
    mimg = nib.load(mask)
    _check_image(img, bold, 4)
    _check_image(mimg, mask, 3)
    if img.shape[:3] != mimg.shape:
        raise DataError(
            f"mask {mask} has shape {mimg.shape} but the BOLD volumes of {bold} are {img.shape[:3]}; "
            "use a mask in the same space (resample it with nilearn.image.resample_to_img)."
        )
    if not np.allclose(img.affine, mimg.affine, atol=1e-3):
        raise DataError(f"mask {mask} and BOLD {bold} have different affines; resample the mask to the BOLD grid.")
    runs = np.asarray(runs)
    if runs.shape != (img.shape[3],):
        raise DataError(
            f"{bold} has {img.shape[3]} volumes but the run labels have length {runs.shape[0]}; "
            "give one run label per volume."
        )
    header_tr = float(img.header.get_zooms()[3]) if len(img.header.get_zooms()) > 3 else 0.0
    if header_tr > 0 and abs(header_tr - tr) > 1e-3 * max(tr, 1):
        raise DataError(
            f"brain.tr={tr} s but the header of {bold} says {header_tr} s; fix brain.tr (or the header)."
        )
    data = masking.apply_mask(img, mimg).astype(np.float64)  # (n_trs, n_voxels)
    labels = np.unique(runs)
    keep, message = varying_voxels([data[runs == r].std(0) for r in labels], str(bold),
                                   run_names=[f"run {r}" for r in labels])
    dropped = int((~keep).sum())
    if message:
        warnings.warn(message, stacklevel=2)
        mimg = mask_of_kept(np.asarray(mimg.dataobj), keep, mimg.affine)
        data = data[:, keep]
    if detrend or standardize:
        data = signal.clean(
            data,
            runs=runs,
            detrend=detrend,
            standardize="zscore_sample" if standardize else False,
            t_r=tr,
        )
    return Recording(
        data=data.astype(np.float32),
        runs=runs,
        tr=float(tr),
        mask_img=mimg,
        subject=subject,
        dropped_voxels=dropped,
    )
