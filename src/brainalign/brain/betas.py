"""GLMsingle-style single-trial betas (``.npy`` / ``.mat`` / NIfTI) with item tables.

Formats read (Xiao et al., 2026, ds003076):

* GLMsingle Python output ``TYPED_FITHRF_GLMDENOISE_RR.npy``: a pickled dict
  whose ``betasmd`` is (X, Y, Z, n_trials) or (n_voxels, 1, 1, n_trials);
  loading it needs ``allow_pickle=True`` (only for files you trust);
* GLMsingle MATLAB output ``TYPED_FITHRF_GLMDENOISE_RR.mat`` (``modelmd``),
  MATLAB v5 or v7.3 (HDF5);
* Brain-guided_LLM extracts ``<sub>.mat`` with ``all_voxels`` (n_items, n_voxels);
* a plain ``.npy`` array (n_items, n_voxels) or (X, Y, Z, n_items);
* a 4-D NIfTI (X, Y, Z, n_items).

Volumes need a mask; its non-zero voxels (C order) become the columns.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from brainalign._utils.errors import DataError
from .items import ItemResponses

__all__ = ["read_beta_array", "read_item_table", "items_from_events", "load_item_betas", "top_fraction_mask"]

_KEYS = ("betasmd", "modelmd", "all_voxels", "betas")


def _pick_key(keys: Sequence[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in keys:
            raise DataError(f"{path} has no variable {key!r}; it holds {sorted(keys)}.")
        return key
    for k in _KEYS:
        if k in keys:
            return k
    raise DataError(f"{path}: none of {list(_KEYS)} found (it holds {sorted(keys)}); pass key= naming the betas.")


def read_beta_array(path: str | Path, key: str | None = None, allow_pickle: bool = False) -> np.ndarray:
    """The raw beta array of a file, as stored (no masking, no transposition of 2-D arrays).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; unknown extension; pickled ``.npy`` without ``allow_pickle``; missing key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: betas file not found; GLMsingle writes TYPED_FITHRF_GLMDENOISE_RR.npy/.mat in its output folder."
        )
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return np.asarray(nib.load(path).dataobj)
    if name.endswith(".npy"):
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError:
            if not allow_pickle:
                raise DataError(
                    f"{path} is a pickled object (GLMsingle's Python output dict); load it with allow_pickle=True "
                    "only if you trust the file."
                ) from None
            arr = np.load(path, allow_pickle=True)
        if arr.dtype == object:
            obj = arr.item() if arr.shape == () else arr
            if not isinstance(obj, dict):
                raise DataError(f"{path}: object array that is not a dict of results.")
            return np.asarray(obj[_pick_key(list(obj), key, path)])
        return arr
    if name.endswith(".mat"):
        from scipy.io import loadmat

        try:
            mat = loadmat(path)
            return np.asarray(mat[_pick_key([k for k in mat if not k.startswith("__")], key, path)])
        except NotImplementedError:  # MATLAB v7.3 = HDF5, axes reversed
            import h5py

            with h5py.File(path, "r") as f:
                return np.asarray(f[_pick_key(list(f), key, path)]).T
    raise DataError(f"{path}: unknown betas format; use .npy, .mat, .nii or .nii.gz.")


def read_item_table(items) -> pd.DataFrame:
    """An item table from a DataFrame, a CSV/TSV path or a list of item names.

    The table gets an ``item`` column (its first column if none is named so).
    """
    if isinstance(items, pd.DataFrame):
        table = items.copy()
    elif isinstance(items, (str, Path)):
        p = Path(items)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: item table not found; check brain.items.")
        table = pd.read_csv(p, sep="\t" if p.suffix in (".tsv", ".txt") else ",", na_values=["n/a"], keep_default_na=False)
    else:
        table = pd.DataFrame({"item": list(items)})
    if "item" not in table.columns:
        table = table.rename(columns={table.columns[0]: "item"})
    return table.reset_index(drop=True)


def items_from_events(
    events: pd.DataFrame,
    exclude: Sequence[str] = ("control",),
    task: str | None = None,
    stimulus_column: str = "stimulus",
) -> pd.DataFrame:
    """Item table in trial order from an events table (one GLMsingle beta per non-excluded trial).

    ``item`` is ``[task_]run-R_trial-K`` (K counts kept trials within the run, from 1);
    all event columns are kept.
    """
    if stimulus_column not in events.columns:
        raise DataError(f"events lack the column {stimulus_column!r}; columns are {list(events.columns)}.")
    keep = events[~events[stimulus_column].isin(list(exclude))].copy()
    keep["trial_in_run"] = keep.groupby("run").cumcount() + 1
    pre = f"{task}_" if task else ""
    keep.insert(0, "item", [f"{pre}run-{int(r):02d}_trial-{k:02d}" for r, k in zip(keep["run"], keep["trial_in_run"])])
    return keep.reset_index(drop=True)


def load_item_betas(
    path: str | Path,
    items=None,
    *,
    key: str | None = None,
    mask: str | Path | nib.Nifti1Image | None = None,
    subject: str = "01",
    allow_pickle: bool = False,
    drop_nonfinite: bool = True,
) -> ItemResponses:
    """Single-trial betas with their item table.

    Parameters
    ----------
    path : path
        Betas file (see module docstring).
    items : DataFrame, path or list, optional
        One row per beta, in file order. Default: items ``0..n-1``.
    key : str, optional
        Variable holding the betas (default: betasmd, modelmd, all_voxels, betas).
    mask : path or image, optional
        Required for volumetric betas (X, Y, Z, n); shape must match.
    subject : str
    allow_pickle : bool
        Needed for GLMsingle's pickled ``.npy`` results dict.
    drop_nonfinite : bool
        Drop voxels with a NaN/inf beta (with a warning) instead of failing.

    Returns
    -------
    ItemResponses with data (n_items, n_voxels) float32.
    """
    path = Path(path)
    arr = read_beta_array(path, key, allow_pickle)
    mimg = None
    if arr.ndim == 4 and arr.shape[1:3] == (1, 1):
        data = np.asarray(arr[:, 0, 0, :]).T  # GLMsingle on (n_voxels, time) input
    elif arr.ndim == 4:
        if mask is None:
            raise DataError(f"{path} holds volumetric betas of shape {arr.shape}; pass mask= (3-D NIfTI of shape {arr.shape[:3]}).")
        mimg = mask if isinstance(mask, nib.spatialimages.SpatialImage) else None
        if mimg is None:
            mp = Path(mask)
            if not mp.is_file():
                raise FileNotFoundError(f"{mp}: mask file not found; check brain.mask.")
            mimg = nib.load(mp)
        m = np.asarray(mimg.dataobj) != 0
        if m.shape != arr.shape[:3]:
            raise DataError(
                f"mask has shape {m.shape} but the betas in {path} have volume shape {arr.shape[:3]}; "
                "use the mask of the GLMsingle input space (or resample it with nilearn.image.resample_to_img)."
            )
        data = np.asarray(arr)[m].T
        mimg = nib.Nifti1Image(m.astype(np.uint8), mimg.affine)
    elif arr.ndim == 2:
        data = np.asarray(arr)
    else:
        raise DataError(f"{path}: betas of shape {arr.shape}; expected (n_items, n_voxels) or (X, Y, Z, n_items).")
    table = read_item_table(items) if items is not None else pd.DataFrame({"item": np.arange(data.shape[0])})
    if len(table) != data.shape[0]:
        hint = " (the array looks transposed: pass betas as (n_items, n_voxels))" if data.shape[1] == len(table) else ""
        raise DataError(f"{path} holds {data.shape[0]} betas but the item table has {len(table)} rows{hint}.")
    data = data.astype(np.float32)
    finite = np.isfinite(data).all(0)
    if not finite.all():
        if not drop_nonfinite:
            raise DataError(f"{path}: {int((~finite).sum())} voxels have non-finite betas; set drop_nonfinite=True.")
        warnings.warn(f"{path}: dropping {int((~finite).sum())} of {finite.size} voxels with non-finite betas.", stacklevel=2)
        data = data[:, finite]
        if mimg is not None:
            m = np.asarray(mimg.dataobj) > 0
            flat = np.flatnonzero(m.ravel())
            new = np.zeros(m.size, np.uint8)
            new[flat[finite]] = 1
            mimg = nib.Nifti1Image(new.reshape(m.shape), mimg.affine)
    return ItemResponses(data=data, items=table, mask_img=mimg, subject=str(subject),
                         meta=dict(loader="betas", path=str(path), key=key, dropped_voxels=int((~finite).sum())))


def top_fraction_mask(
    stat_img: str | Path | nib.Nifti1Image, roi_img: str | Path | nib.Nifti1Image, fraction: float = 0.1
) -> nib.Nifti1Image:
    """Voxels of an ROI with the highest statistic (Xiao et al., 2026: top 10 % of a task t-map).

    Parameters
    ----------
    stat_img : path or image
        3-D statistic map (e.g. an SPM t-map), same grid as ``roi_img``.
    roi_img : path or image
        3-D ROI; non-zero voxels are candidates.
    fraction : float in (0, 1]
        Share of the ROI's finite voxels kept: ``ceil(fraction · n)``, highest first (ties broken by voxel order).

    Returns
    -------
    Nifti1Image, uint8 mask on the ROI grid.
    """
    if not 0 < fraction <= 1:
        raise DataError(f"fraction must lie in (0, 1], got {fraction}.")
    imgs = []
    for name, img in (("stat_img", stat_img), ("roi_img", roi_img)):
        if not isinstance(img, nib.spatialimages.SpatialImage):
            if not Path(img).is_file():
                raise FileNotFoundError(f"{img}: {name} file not found.")
            img = nib.load(img)
        imgs.append(img)
    stat, roi = np.asarray(imgs[0].dataobj, dtype=np.float64), np.asarray(imgs[1].dataobj) != 0
    if stat.shape != roi.shape or not np.allclose(imgs[0].affine, imgs[1].affine, atol=1e-3):
        raise DataError(
            f"stat_img {stat.shape} and roi_img {roi.shape} are on different grids; resample the ROI to the statistic map "
            "(nilearn.image.resample_to_img(roi, stat, interpolation='nearest'))."
        )
    cand = np.flatnonzero((roi & np.isfinite(stat)).ravel())
    if cand.size == 0:
        raise DataError("the ROI holds no voxel with a finite statistic.")
    k = int(np.ceil(fraction * cand.size))
    order = np.argsort(-stat.ravel()[cand], kind="stable")
    out = np.zeros(stat.size, dtype=np.uint8)
    out[cand[order[:k]]] = 1
    return nib.Nifti1Image(out.reshape(stat.shape), imgs[1].affine)
