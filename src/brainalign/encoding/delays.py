"""Run-aware finite-impulse-response (FIR) delays and within-run z-scoring.

Written by hand because voxelwise_tutorials' ``Delayer`` and the Huth-lab
``make_delayed`` shift across the concatenated series, so the first TRs of
run k would see features from the end of run k-1.
"""
from __future__ import annotations

import numpy as np

__all__ = ["make_delayed", "zscore_within_runs", "zscore_with_train", "run_boundaries"]


def run_boundaries(runs: np.ndarray) -> list[np.ndarray]:
    """Indices of the samples of each run, in order of first appearance.

    Parameters
    ----------
    runs : ndarray of shape (n_samples,)
        Run label of every sample. Samples of one run must be contiguous.

    Returns
    -------
    list of ndarray
        One array of sample indices per run.
    """
    runs = np.asarray(runs)
    if runs.ndim != 1:
        raise ValueError(f"runs must be 1-D (one label per sample), got shape {runs.shape}.")
    if runs.size == 0:
        return []
    change = np.flatnonzero(runs[1:] != runs[:-1]) + 1
    starts = np.concatenate([[0], change])
    labels = runs[starts]
    uniq, counts = np.unique(labels, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"runs: the samples of each run must be contiguous; run labels {uniq[counts > 1].tolist()} "
            "appear in several separate stretches. Sort the samples by run first."
        )
    ends = np.concatenate([change, [runs.size]])
    return [np.arange(s, e) for s, e in zip(starts, ends)]


def make_delayed(X: np.ndarray, delays, runs: np.ndarray | None = None) -> np.ndarray:
    """Stack time-shifted copies of ``X`` without crossing run boundaries.

    Column blocks are delay-major, as voxelwise_tutorials' ``Delayer``:
    ``[X(t - d0), X(t - d1), ...]``. Inside each run, a sample whose delayed
    source would fall before the run's first sample is set to zero.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features on the TR grid, runs concatenated.
    delays : sequence of int
        Delays in samples (TRs); each >= 0 (negative delays shift forward).
    runs : ndarray of shape (n_samples,), optional
        Run label per sample (runs contiguous, any label order). ``None``
        treats the data as one run.

    Returns
    -------
    X_delayed : ndarray of shape (n_samples, n_delays * n_features)
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}.")
    delays = [int(d) for d in np.atleast_1d(delays)]
    if len(delays) == 0:
        raise ValueError("delays is empty; give at least one delay, e.g. [1, 2, 3, 4].")
    if runs is None:
        runs = np.zeros(X.shape[0], dtype=int)
    runs = np.asarray(runs)
    if runs.shape != (X.shape[0],):
        raise ValueError(
            f"runs has shape {runs.shape} but X has {X.shape[0]} samples; give one run label per sample."
        )
    n_features = X.shape[1]
    out = np.zeros((X.shape[0], len(delays) * n_features), dtype=X.dtype)
    for idx in run_boundaries(runs):
        start, stop = idx[0], idx[-1] + 1
        block = X[start:stop]
        n = stop - start
        for k, d in enumerate(delays):
            cols = slice(k * n_features, (k + 1) * n_features)
            if abs(d) >= n:
                continue
            if d > 0:
                out[start + d : stop, cols] = block[: n - d]
            elif d < 0:
                out[start : stop + d, cols] = block[-d:]
            else:
                out[start:stop, cols] = block
    return out


def zscore_within_runs(Y: np.ndarray, runs: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Z-score every column within each run (each run with its own statistics).

    This is a per-run normalisation of the signal (no labels, no model); a
    column that is constant within a run becomes zero in that run.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_columns)
    runs : ndarray of shape (n_samples,)

    Returns
    -------
    ndarray of shape (n_samples, n_columns), float32
    """
    Y = np.asarray(Y, dtype=np.float64)
    out = np.empty_like(Y)
    for idx in run_boundaries(runs):
        block = Y[idx]
        mu = block.mean(0)
        sd = block.std(0)
        z = (block - mu) / np.where(sd > eps, sd, 1.0)
        z[:, sd <= eps] = 0.0
        out[idx] = z
    return out.astype(np.float32)


def zscore_with_train(X: np.ndarray, train, eps: float = 1e-8) -> np.ndarray:
    """Z-score every column with the mean and standard deviation of the training rows only.

    Use this for any normalisation whose statistics span several runs (e.g.
    features before the ridge): the held-out rows are transformed with the
    training statistics and never influence them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_columns)
    train : ndarray of int or bool, shape (n_train,) or (n_samples,)
        Training rows.
    eps : float
        Columns with a training standard deviation <= eps become zero.

    Returns
    -------
    ndarray of shape (n_samples, n_columns), float32
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_columns), got shape {X.shape}.")
    train = np.asarray(train)
    if train.dtype == bool:
        if train.shape != (X.shape[0],):
            raise ValueError(f"train mask has shape {train.shape}; give one bool per sample ({X.shape[0]}).")
        train = np.flatnonzero(train)
    if train.size < 2:
        raise ValueError(f"train selects {train.size} rows; at least 2 are needed for a standard deviation.")
    mu = X[train].mean(0)
    sd = X[train].std(0)
    ok = sd > eps
    out = (X - mu) / np.where(ok, sd, 1.0)
    out[:, ~ok] = 0.0
    return out.astype(np.float32)
