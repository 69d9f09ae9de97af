"""voxelwise_tutorials HDF5 responses (``Y_train``, ``Y_test``, ``run_onsets``) as a generic format.

The Gallant-lab tutorials store one subject's responses as an HDF5 file with

* ``Y_train`` (n_samples_train, n_voxels): training runs concatenated;
* ``Y_test`` (n_repeats, n_samples_test, n_voxels): the test run, repeated;
* ``run_onsets`` (n_runs,): first sample of every training run.

The TR is not stored in the file (2.0 s for the short-clips dataset). The
test repeats are averaged one repeat at a time (float64 sums), so only one
repeat is read at a time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainalign._utils.errors import DataError
from .recording import Recording

__all__ = ["load_vwt_hdf5", "read_vwt_test_repeats"]


def _open(path: Path):
    import h5py

    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: responses file not found; voxelwise_tutorials datasets keep them in responses/<subject>_responses.hdf "
            "(e.g. the short-clips dataset, https://gin.g-node.org/gallantlab/shortclips)."
        )
    f = h5py.File(path, "r")
    missing = [k for k in ("Y_train", "Y_test", "run_onsets") if k not in f]
    if missing:
        keys = list(f)
        f.close()
        raise DataError(f"{path} lacks dataset(s) {missing} (it holds {keys}); is it a voxelwise_tutorials responses file?")
    return f


def load_vwt_hdf5(path: str | Path, tr: float, subject: str = "01", average_test: bool = True) -> Recording:
    """Load a voxelwise_tutorials responses file as one Recording.

    Parameters
    ----------
    path : path
    tr : float
        Seconds per sample (not stored in the file).
    subject : str
    average_test : bool
        Average the test repeats into one run (True) or append every repeat as its own run.

    Returns
    -------
    Recording
        Training runs labelled 1..R (from ``run_onsets``), then the test run(s);
        ``run_ids`` = ``train-01``…, ``test`` (or ``test-rep1``…);
        ``meta["test_runs"]`` lists the test run labels; ``space="voxels"``, ``mask_img=None``.
    """
    path = Path(path)
    if tr <= 0:
        raise DataError(f"tr must be > 0 seconds, got {tr}.")
    with _open(path) as f:
        ytr, yte, onsets = f["Y_train"], f["Y_test"], np.asarray(f["run_onsets"]).astype(np.int64).ravel()
        if ytr.ndim != 2 or yte.ndim != 3 or yte.shape[2] != ytr.shape[1]:
            raise DataError(
                f"{path}: Y_train {ytr.shape} and Y_test {yte.shape} must be (n_samples, n_voxels) and "
                "(n_repeats, n_samples, n_voxels) with the same n_voxels."
            )
        n = ytr.shape[0]
        if onsets.size == 0 or onsets[0] != 0 or np.any(np.diff(onsets) <= 0) or onsets[-1] >= n:
            raise DataError(f"{path}: run_onsets {onsets.tolist()} must start at 0 and increase within 0..{n - 1}.")
        train = np.asarray(ytr, dtype=np.float32)
        runs = np.zeros(n, dtype=np.int64)
        for k, (a, b) in enumerate(zip(onsets, list(onsets[1:]) + [n]), 1):
            runs[a:b] = k
        n_runs = onsets.size
        ids = [f"train-{k:02d}" for k in range(1, n_runs + 1)]
        if average_test:
            acc = np.zeros(yte.shape[1:], dtype=np.float64)
            for r in range(yte.shape[0]):
                acc += yte[r]
            tests = [(acc / yte.shape[0]).astype(np.float32)]
            ids.append("test")
        else:
            tests = [np.asarray(yte[r], dtype=np.float32) for r in range(yte.shape[0])]
            ids += [f"test-rep{r + 1}" for r in range(yte.shape[0])]
        n_rep = int(yte.shape[0])
    labels = [runs] + [np.full(t.shape[0], n_runs + i + 1) for i, t in enumerate(tests)]
    return Recording(
        data=np.concatenate([train] + tests, axis=0),
        runs=np.concatenate(labels),
        tr=float(tr),
        mask_img=None,
        subject=str(subject),
        meta=dict(loader="vwt_hdf5", path=str(path), n_test_repeats=n_rep,
                  test_runs=list(range(n_runs + 1, n_runs + 1 + len(tests)))),
        space="voxels",
        run_ids=tuple(ids),
    )


def read_vwt_test_repeats(path: str | Path, voxels: slice | np.ndarray | None = None) -> np.ndarray:
    """``Y_test`` (n_repeats, n_samples_test, n_voxels) as float32, optionally a voxel subset (for noise ceilings)."""
    path = Path(path)
    with _open(path) as f:
        d = f["Y_test"]
        if voxels is None:
            return np.asarray(d, dtype=np.float32)
        return np.stack([np.asarray(d[r], dtype=np.float32)[:, voxels] for r in range(d.shape[0])])
