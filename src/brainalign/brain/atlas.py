"""Atlases: label tables and label images (NIfTI, HDF5, arrays), ROI masks from them, and the Glasser groups.

Label I/O sits in ``brain/`` because the dataset loaders (NSD's ROI files) read labels as they load; the ROI
statistics over these masks are in :mod:`brainalign.analysis.rois`, which re-exports these names.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from brainalign._utils.errors import DataError

__all__ = ["load_label_table", "load_label_image", "load_surface_labels", "roi_masks", "glasser_groups", "glasser_group_masks",
           "hierarchy_levels"]


def load_label_table(table) -> dict[int, str]:
    """Read a label table into ``{label value: name}``.

    Parameters
    ----------
    table : mapping, DataFrame, or path
        A mapping ``{int: str}`` (or ``{str: int}``); a DataFrame with
        columns ``index``/``label`` and ``name``; a CSV/TSV file with those
        columns; a JSON object; or a FreeSurfer/NSD ``.ctab``-style text file
        with lines ``<index> <name> ...``.
    """
    if isinstance(table, Mapping):
        items = list(table.items())
        if items and isinstance(items[0][0], str) and not str(items[0][0]).lstrip("-").isdigit():
            return {int(v): str(k) for k, v in items}
        return {int(k): str(v) for k, v in items}
    if isinstance(table, pd.DataFrame):
        idx_col = next((c for c in ("index", "label", "value", "id") if c in table.columns), None)
        if idx_col is None or "name" not in table.columns:
            raise DataError(
                f"label table columns are {list(table.columns)}; it needs an 'index' (or 'label') column and a 'name' column."
            )
        return {int(i): str(n) for i, n in zip(table[idx_col], table["name"])}
    path = Path(table)
    if not path.exists():
        raise DataError(f"label table file {str(path)!r} does not exist; pass a path, a mapping or a DataFrame.")
    if path.suffix == ".json":
        return load_label_table(json.loads(path.read_text()))
    if path.suffix in (".csv", ".tsv"):
        return load_label_table(pd.read_csv(path, sep="," if path.suffix == ".csv" else "\t"))
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].lstrip("-").isdigit():
            out[int(parts[0])] = parts[1]
    if not out:
        raise DataError(f"no '<index> <name>' lines found in {str(path)!r}; is it a label table?")
    return out


def load_label_image(image) -> tuple[np.ndarray, dict[int, str] | None]:
    """Integer labels of a label image and its embedded table, if any.

    Parameters
    ----------
    image : ndarray, nibabel image, or path
        NIfTI (volume), GIFTI ``.label.gii`` (surface; its label table is
        read too) or FreeSurfer ``.annot``.

    Returns
    -------
    labels : ndarray of int (volume shape, or (n_vertices,))
    table : dict or None
    """
    import nibabel as nib

    if isinstance(image, np.ndarray):
        return _as_int_labels(image), None
    if isinstance(image, (str, Path)):
        p = str(image)
        if p.endswith(".annot"):
            labels, _, names = nib.freesurfer.read_annot(p)
            return labels.astype(np.int64), {i: (n.decode() if isinstance(n, bytes) else str(n)) for i, n in enumerate(names)}
        image = nib.load(p)
    if isinstance(image, nib.gifti.GiftiImage):
        labels = _as_int_labels(image.darrays[0].data)
        table = image.labeltable.get_labels_as_dict() if image.labeltable is not None else None
        return labels, ({int(k): str(v) for k, v in table.items()} if table else None)
    if hasattr(image, "get_fdata"):
        return _as_int_labels(np.asanyarray(image.dataobj)), None
    raise DataError(f"cannot read a label image from {type(image).__name__}; pass an array, a nibabel image or a path.")


def load_surface_labels(paths: Sequence[str | Path]) -> tuple[np.ndarray, dict[int, str]]:
    """Labels of both hemispheres (left then right, as surface recordings order their vertices) and one table.

    Parameters
    ----------
    paths : (left, right)
        GIFTI ``.label.gii`` or FreeSurfer ``.annot`` files on the recording's mesh (e.g. TemplateFlow's
        ``tpl-fsaverage6_hemi-{L,R}_desc-MMP_dseg.label.gii``).

    Returns
    -------
    labels : ndarray of int, shape (n_left + n_right,)
    table : dict value -> name, from the files' embedded tables (the left's names where both name a value;
        values only the right names keep the right's names)
    """
    if len(paths) != 2:
        raise DataError(f"give two surface label files (left, right hemisphere), got {len(paths)}.")
    parts, table = [], {}
    for path in paths:
        labels, names = load_label_image(path)
        if labels.ndim != 1:
            raise DataError(f"{path}: a surface label file holds one label per vertex; got an array of shape "
                            f"{labels.shape} (a volume? use brain.rois.image).")
        parts.append(labels)
        for k, v in (names or {}).items():
            table.setdefault(int(k), v)
    return np.concatenate(parts), table


def _as_int_labels(a) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.allclose(a, np.round(a)):
            raise DataError("label_image holds non-integer values; pass a label (dseg) image, not a probability map.")
        a = np.round(a)
    return a.astype(np.int64)


def roi_masks(
    label_image,
    label_table=None,
    labels: Sequence[str | int] | None = None,
    brain_mask=None,
    background: int = 0,
) -> dict[str, np.ndarray]:
    """One boolean mask per label of a label image.

    Parameters
    ----------
    label_image : ndarray, nibabel image or path
        Integer labels (volume or surface).
    label_table : mapping, DataFrame or path, optional
        Label value → name. Defaults to the table embedded in the image
        (GIFTI/annot); labels missing from the table are named ``label_<value>``.
    labels : sequence of str or int, optional
        Only these ROIs (names or values). Unknown ones raise ValueError.
    brain_mask : ndarray of bool, optional
        Same shape as the label image: the voxels the scores are defined on;
        masks are then 1-D over those voxels, in ``brain_mask`` order.
    background : int
        Label value that is not an ROI.

    Returns
    -------
    dict of str -> ndarray of bool
        Every labelled ROI (in label-value order) or the requested ones.
    """
    img, embedded = load_label_image(label_image)
    table = load_label_table(label_table) if label_table is not None else (embedded or {})
    if brain_mask is not None:
        brain_mask = np.asarray(brain_mask, dtype=bool)
        if brain_mask.shape != img.shape:
            raise DataError(
                f"brain_mask has shape {brain_mask.shape} but label_image has shape {img.shape}; "
                "resample the atlas to the data grid first (nilearn.image.resample_to_img, interpolation='nearest')."
            )
        img = img[brain_mask]
    present = [int(v) for v in np.unique(img) if v != background]
    names = {v: table.get(v, f"label_{v}") for v in present}
    if labels is None:
        return {names[v]: img == v for v in present}
    by_name = {n: v for v, n in names.items()}
    known = {n: v for v, n in table.items() if v != background}
    out = {}
    for lab in labels:
        if isinstance(lab, (int, np.integer)):
            v = int(lab)
            if v not in present and v not in table:
                raise DataError(f"ROI label {v} is neither in the label table nor in the image; available: {sorted(present)}.")
            out[table.get(v, f"label_{v}")] = img == v
        else:
            v = by_name.get(lab, known.get(lab))
            if v is None:
                raise DataError(
                    f"ROI label {lab!r} is not in the label table; available names: {sorted(set(names.values()) | set(known))}."
                )
            out[lab] = img == v
    return out


# --------------------------------------------------------------------------- Glasser groups and hierarchy
def _glasser_json() -> dict:
    path = Path(__file__).resolve().parents[1] / "data" / "atlases" / "glasser_groups.json"
    return json.loads(path.read_text())


def glasser_groups() -> dict[str, list[int]]:
    """HCP-MMP1 parcel groups of the Movie10 pipeline (``subbareddy248/multi-modal-brain-stimuli``): ``{group: [labels]}``."""
    return {g: list(v["indices"]) for g, v in _glasser_json()["groups"].items()}


def glasser_group_masks(mmp_labels, groups: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Masks of the Glasser groups over vertices labelled with MMP values.

    Parameters
    ----------
    mmp_labels : ndarray of int, shape (n_vertices,)
        MMP label value of every vertex (LH and RH concatenated; the values
        are the same in both hemispheres).
    groups : sequence of str, optional
        Group names (default all); unknown names raise ValueError.

    Returns
    -------
    dict of str -> bool ndarray of shape (n_vertices,)
    """
    table = glasser_groups()
    lab = _as_int_labels(mmp_labels)
    groups = list(table) if groups is None else list(groups)
    unknown = [g for g in groups if g not in table]
    if unknown:
        raise DataError(f"unknown Glasser group(s) {unknown}; available: {sorted(table)}.")
    return {g: np.isin(lab, table[g]) for g in groups}


def hierarchy_levels() -> list[tuple[str, list[str]]]:
    """Default ordered hierarchy: ``[(level, [ROI groups]), ...]`` from early visual to motor."""
    return [(d["level"], list(d["groups"])) for d in _glasser_json()["hierarchy"]["levels"]]


# --------------------------------------------------------------------------- aggregation
