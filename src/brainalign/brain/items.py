"""Item-wise responses: one row per stimulus (single-trial or repeat-averaged betas).

Static-stimulus studies (NSD images, ds003076 reasoning items) are encoded
from one response per item rather than a TR time series, so they do not go
through hemodynamic delays. :class:`ItemResponses` is their common form.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn import masking

from brainalign._utils.errors import DataError


__all__ = ["ItemResponses"]


@dataclass
class ItemResponses:
    """Responses of one subject to a set of items.

    Attributes
    ----------
    data : ndarray of shape (n_items, n_voxels), float32
    items : DataFrame with n_items rows
        One row per row of ``data``: at least ``item`` (identifier) and,
        where the dataset defines one, ``split`` (``"train"``/``"test"``) and
        ``n_repeats`` (trials averaged into the row).
    mask_img : nibabel.Nifti1Image or None
        Volume mask whose non-zero voxels, in C order, are the columns.
    subject : str
    meta : dict
        Provenance (files read, units, options).
    """

    data: np.ndarray
    items: pd.DataFrame
    mask_img: nib.Nifti1Image | None
    subject: str = "01"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[0] != len(self.items):
            raise DataError(
                f"data has shape {self.data.shape} but the item table has {len(self.items)} rows; "
                "give one table row per data row."
            )

    @property
    def n_voxels(self) -> int:
        return self.data.shape[1]

    def select(self, rows: np.ndarray) -> ItemResponses:
        """A copy restricted to some items (boolean mask or integer indices), e.g. to drop excluded items."""
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self.items),):
            raise DataError(f"a boolean row selection needs shape ({len(self.items)},), got {rows.shape}.")
        return ItemResponses(self.data[rows], self.items.iloc[rows].reset_index(drop=True) if rows.dtype != bool
                             else self.items[rows].reset_index(drop=True), self.mask_img, self.subject, dict(self.meta))

    def split_mask(self, split: str) -> np.ndarray:
        """Boolean (n_items,) selecting the rows of one split."""
        if "split" not in self.items.columns:
            raise DataError("these items have no 'split' column; build the split with brainalign.encoding.splits.")
        return (self.items["split"] == split).to_numpy()

    def unmask(self, values: np.ndarray) -> nib.Nifti1Image:
        """Put one value per voxel back into the volume (NaN outside the mask)."""
        if self.mask_img is None:
            raise DataError("these responses have no volume mask to unmask into.")
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (self.n_voxels,):
            raise DataError(f"values must have shape ({self.n_voxels},), got {values.shape}.")
        return masking.unmask(values, self.mask_img)
