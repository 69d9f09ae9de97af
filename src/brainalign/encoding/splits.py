"""Run-wise cross-validation folds.

Folds are lists of ``(train_indices, test_indices)`` pairs, the form that
himalaya's and scikit-learn's ``cv`` arguments accept.
"""
from __future__ import annotations

import numpy as np

__all__ = ["leave_one_run_out", "leave_runs_out", "train_test_by_runs"]


def _check_runs(runs) -> np.ndarray:
    runs = np.asarray(runs)
    if runs.ndim != 1 or runs.size == 0:
        raise ValueError(f"runs must be a non-empty 1-D array of run labels, got shape {runs.shape}.")
    return runs


def leave_one_run_out(runs) -> list[tuple[np.ndarray, np.ndarray]]:
    """One fold per run: test on that run, train on all others.

    Parameters
    ----------
    runs : ndarray of shape (n_samples,)

    Returns
    -------
    list of (train, test) index arrays, in sorted run order.
    """
    runs = _check_runs(runs)
    labels = np.unique(runs)
    if labels.size < 2:
        raise ValueError(
            f"leave-one-run-out needs at least 2 runs, got {labels.size} ({labels.tolist()}); "
            "use blocked folds for a single long run."
        )
    return [(np.flatnonzero(runs != r), np.flatnonzero(runs == r)) for r in labels]


def leave_runs_out(runs, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_folds`` folds of whole runs (contiguous groups of sorted run labels).

    Parameters
    ----------
    runs : ndarray of shape (n_samples,)
    n_folds : int
        Number of folds; at most the number of runs.
    """
    runs = _check_runs(runs)
    labels = np.unique(runs)
    if not 2 <= n_folds <= labels.size:
        raise ValueError(
            f"n_folds={n_folds} but there are {labels.size} runs; choose 2 <= n_folds <= {labels.size}."
        )
    groups = np.array_split(labels, n_folds)
    return [(np.flatnonzero(~np.isin(runs, g)), np.flatnonzero(np.isin(runs, g))) for g in groups]


def train_test_by_runs(runs, test_runs) -> tuple[np.ndarray, np.ndarray]:
    """Outer split: samples of ``test_runs`` are held out, all others train.

    Raises
    ------
    ValueError
        If a test run does not exist or no training run is left.
    """
    runs = _check_runs(runs)
    test_runs = np.atleast_1d(test_runs)
    missing = np.setdiff1d(test_runs, np.unique(runs))
    if missing.size:
        raise ValueError(
            f"test_runs {missing.tolist()} do not exist; the data have runs {np.unique(runs).tolist()}."
        )
    test = np.isin(runs, test_runs)
    if test.all():
        raise ValueError("test_runs holds every run; leave at least one run for training.")
    return np.flatnonzero(~test), np.flatnonzero(test)
