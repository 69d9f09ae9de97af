"""Fast checks of an experiment before any compute: files, shapes, timing.

Reads only headers and small tables; never loads a model or fits anything.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from brainalign.config import ConfigError, Experiment, resolve_path
from brainalign.stimuli.events import read_tr_labels

__all__ = ["preflight"]


def _existing(exp_file: str | None, field: str, value: str, base_dir: Path | None) -> Path:
    p = resolve_path(value, base_dir)
    if not p.is_file():
        raise ConfigError(f"{p} does not exist or is not a file; fix the path.", file=exp_file, field=field)
    return p


def preflight(exp: Experiment, base_dir: Path | None = None, config_file: str | None = None) -> dict:
    """Check that the data named by ``exp`` exist and agree with each other.

    Returns
    -------
    dict
        What was checked (n_trs, n_runs, n_voxels, shapes), for display.

    Raises
    ------
    ConfigError
        Naming the config file, the dotted field and the fix.
    """
    bold = _existing(config_file, "brain.bold", exp.brain.bold, base_dir)
    mask = _existing(config_file, "brain.mask", exp.brain.mask, base_dir)
    events = _existing(config_file, "stimuli.events", exp.stimuli.events, base_dir)
    try:
        img, mimg = nib.load(bold), nib.load(mask)
    except Exception as err:  # nibabel raises several types for unreadable files
        raise ConfigError(f"cannot read the image: {err}", file=config_file, field="brain.bold / brain.mask") from None
    if img.ndim != 4:
        raise ConfigError(f"{bold} has shape {img.shape}; a 4-D BOLD series is needed.", file=config_file,
                          field="brain.bold")
    if mimg.shape != img.shape[:3]:
        raise ConfigError(f"mask shape {mimg.shape} differs from the BOLD volume shape {img.shape[:3]}; use a mask "
                          "on the BOLD grid.", file=config_file, field="brain.mask")
    if not np.allclose(mimg.affine, img.affine, atol=1e-3):
        raise ConfigError("mask and BOLD affines differ; resample the mask to the BOLD grid.", file=config_file,
                          field="brain.mask")
    zooms = img.header.get_zooms()
    if len(zooms) > 3 and zooms[3] > 0 and abs(zooms[3] - exp.brain.tr) > 1e-3 * exp.brain.tr:
        raise ConfigError(f"tr={exp.brain.tr} s but the BOLD header says {zooms[3]} s; fix brain.tr.",
                          file=config_file, field="brain.tr")
    try:
        labels, runs = read_tr_labels(events)
    except ValueError as err:
        raise ConfigError(str(err), file=config_file, field="stimuli.events") from None
    if labels.size != img.shape[3]:
        raise ConfigError(f"{events} has {labels.size} rows but {bold} has {img.shape[3]} volumes; the stimulus "
                          "timing must cover every volume (one row per TR).", file=config_file, field="stimuli.events")
    unknown = sorted(set(np.unique(labels).tolist()) - set(exp.stimuli.labels) - set(exp.stimuli.rest))
    if unknown:
        raise ConfigError(f"label codes {unknown} occur in {events} but are not named; add them to stimuli.labels "
                          "or stimuli.rest.", file=config_file, field="stimuli.labels")
    n_runs = len(np.unique(runs))
    if exp.encoding.outer_cv == "leave-one-run-out":
        if n_runs < 3:
            raise ConfigError(f"nested leave-one-run-out needs at least 3 runs, the data have {n_runs}.",
                              file=config_file, field="encoding.outer_cv")
    else:
        missing = sorted(set(exp.encoding.outer_cv) - set(np.unique(runs).tolist()))
        if missing:
            raise ConfigError(f"test runs {missing} do not exist; the runs are {np.unique(runs).tolist()}.",
                              file=config_file, field="encoding.outer_cv")
        if n_runs - len(set(exp.encoding.outer_cv)) < 2:
            raise ConfigError("fewer than 2 training runs are left for inner cross-validation.",
                              file=config_file, field="encoding.outer_cv")
    n_vox = int((np.asarray(mimg.dataobj) != 0).sum())
    if n_vox == 0:
        raise ConfigError(f"mask {mask} selects no voxel.", file=config_file, field="brain.mask")
    k = exp.timing.pca_components
    return dict(n_trs=int(img.shape[3]), n_runs=n_runs, n_voxels=n_vox, volume=tuple(img.shape[:3]),
                max_features=(k or 0) * len(exp.timing.delays))
