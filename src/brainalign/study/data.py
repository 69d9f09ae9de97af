"""From the config's ``brain`` and ``stimuli`` sections to one :class:`StudyData` per subject.

Two shapes of brain data meet the same encoding code:

* **time series** (``format: nifti``, ``bids``, ``movie10``, ``vwt_hdf5``): rows
  are TRs, ``runs`` are scanner runs, stimuli are placed on the TR grid by the
  design matrix and go through hemodynamic delays;
* **items** (``nsd``, ``glmsingle``): rows are items (single-trial or
  repeat-averaged betas), there is no time axis and no delay. Items are dealt
  into ``encoding.item_folds`` seeded folds that play the role of runs (inner
  CV, held-out groups for the paired tests), and the dataset's own train/test
  split (NSD's shared 1000) is kept for ``encoding.outer_cv: split``.

In both cases ``design`` maps rows to stimuli, so a feature space is
``design @ features``; for items it is a sparse one-hot matrix (an NSD subject
has ~10,000 rows × 10,000 images).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from brainalign._utils.errors import DataError
from brainalign.brain.recording import Recording
from brainalign.config import BrainSpec, resolve_path

__all__ = ["StudyData", "dataset_root", "expand_data_root", "item_folds", "Progress", "no_progress"]

#: ``progress(label, total)`` returns a ``tick()`` called once per finished unit (the CLI draws rich bars).
Progress = Callable[[str, int], Callable[[], None]]


def no_progress(label: str, total: int) -> Callable[[], None]:
    """The default ``progress``: draws nothing."""
    return lambda: None


@dataclass
class StudyData:
    """Brain data and stimuli of one subject.

    Attributes
    ----------
    recording : Recording
        ``data`` (n_rows, n_voxels); for item data the rows are items, ``runs``
        their fold ids and ``meta["rows"] == "items"``.
    events : DataFrame or None
        Stimulus blocks of a time series (None for items).
    stimuli : list of str
        One identifier per stimulus (column of ``design``).
    design : ndarray or scipy.sparse matrix of shape (n_rows, n_stimuli)
    input_files : dict name -> Path
    names : list of str, optional
        Text put into prompts for each stimulus (default: ``stimuli``).
    items : DataFrame or None
        Item table of item data, one row per data row.
    test_rows : ndarray of bool or None
        Item data: rows of the dataset's test split (``encoding.outer_cv: split``).
    load_stimuli : callable or None
        Returns the stimulus objects a multimodal model reads (images, clips...), in ``stimuli`` order;
        movie clips take the modality (``"video"`` or ``"audio"``).
    extract_options : dict
        Extra arguments of the extraction (``sampling_rate`` of audio clips).
    """

    recording: Recording
    events: pd.DataFrame | None
    stimuli: list[str]
    design: Any
    input_files: dict[str, Path] = field(default_factory=dict)
    names: list[str] | None = None
    items: pd.DataFrame | None = None
    test_rows: np.ndarray | None = None
    load_stimuli: Callable[..., Any] | None = None
    extract_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.names is None:
            self.names = list(self.stimuli)

    @property
    def is_items(self) -> bool:
        return self.recording.meta.get("rows") == "items"


def dataset_root(brain: BrainSpec, base_dir: Path | None, data_root: Path | None = None) -> Path:
    """Folder of a dataset format: ``--data-root`` when given, else ``brain.data_root`` next to the config.

    Parameters
    ----------
    brain : BrainSpec
        The config's ``brain`` section.
    base_dir : Path or None
        Folder of the config (relative paths).
    data_root : Path, optional
        ``--data-root``.
    """
    if data_root is not None:
        return Path(data_root)
    if brain.data_root is None:
        raise DataError(f"brain.format '{brain.format}' needs brain.data_root (or --data-root): the folder "
                         "that holds the dataset.")
    return resolve_path(brain.data_root, base_dir)


DATA_ROOT = "{data_root}"


def expand_data_root(brain: BrainSpec, base_dir: Path | None, data_root: Path | None = None) -> BrainSpec:
    """``brain`` with a leading ``{data_root}`` in ``rois.image`` / ``rois.table`` / ``rois.surface_labels`` replaced
    by the dataset folder (:func:`dataset_root`), so an atlas that ships with the dataset moves with
    ``--data-root``.

    Other paths of ROIs stay relative to the config. Returns ``brain`` itself when there is nothing to expand
    (the config refuses the placeholder with format ``nifti``). The pipeline applies it to a whole config with
    :func:`brainalign.pipeline.checks.with_expanded_data_root` (preflight, ``run`` and ``run_study``).

    Parameters
    ----------
    brain : BrainSpec
        The config's ``brain`` section.
    base_dir : Path or None
        Folder of the config.
    data_root : Path, optional
        ``--data-root``.
    """
    rois = brain.rois
    if rois is None or brain.format == "nifti":
        return brain
    fields = {k: v for k, v in (("image", rois.image), ("table", rois.table))
              if isinstance(v, str) and v.startswith(DATA_ROOT)}
    surface = rois.surface_labels or []
    if not fields and not any(v.startswith(DATA_ROOT) for v in surface):
        return brain
    root = str(dataset_root(brain, base_dir, data_root).absolute())
    update = {k: root + v[len(DATA_ROOT):] for k, v in fields.items()}
    if surface:
        update["surface_labels"] = [root + v[len(DATA_ROOT):] if v.startswith(DATA_ROOT) else v for v in surface]
    new = rois.model_copy(update=update)
    return brain.model_copy(update={"rois": new})


def item_folds(n_items: int, k: int, seed: int) -> np.ndarray:
    """Seeded fold id (0..k-1) of every item, folds of equal size ±1.

    Raises
    ------
    ValueError
        If there are fewer items than folds.
    """
    if n_items < k:
        raise DataError(f"{n_items} items cannot fill encoding.item_folds={k} folds; lower item_folds.")
    folds = np.empty(n_items, dtype=np.int64)
    folds[np.random.default_rng(seed).permutation(n_items)] = np.arange(n_items) % k
    return folds
