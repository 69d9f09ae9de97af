"""Run-wise cross-validation folds.

Folds are lists of ``(train_indices, test_indices)`` pairs, the form that
himalaya's and scikit-learn's ``cv`` arguments accept.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["leave_one_run_out", "leave_runs_out", "train_test_by_runs", "blocked_folds", "stratified_folds", "outer_folds",
           "make_folds"]


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


def blocked_folds(n_samples: int, n_folds: int, gap: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous blocks of one long run as folds, with an optional buffer.

    fMRI samples are autocorrelated, so shuffled folds of a single run leak;
    blocked folds keep each test block contiguous, and ``gap`` drops that many
    samples on each side of the test block from the training set.

    Parameters
    ----------
    n_samples : int
    n_folds : int
        Number of blocks, 2 <= n_folds <= n_samples.
    gap : int
        Samples removed from training on both sides of every test block.

    Returns
    -------
    list of (train, test) index arrays, blocks in time order.
    """
    n_samples = int(n_samples)
    if not 2 <= n_folds <= n_samples:
        raise ValueError(f"n_folds={n_folds} must be between 2 and n_samples={n_samples}.")
    if gap < 0:
        raise ValueError(f"gap={gap} must be >= 0 (samples dropped around each test block).")
    idx = np.arange(n_samples)
    folds = []
    for block in np.array_split(idx, n_folds):
        lo, hi = block[0] - gap, block[-1] + gap
        train = idx[(idx < lo) | (idx > hi)]
        if train.size == 0:
            raise ValueError(
                f"gap={gap} leaves no training sample for the block {block[0]}..{block[-1]}; reduce gap."
            )
        folds.append((train, block))
    return folds


def stratified_folds(labels, n_folds: int, groups=None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds that keep the proportion of each label (item designs, e.g. stimulus categories).

    Parameters
    ----------
    labels : ndarray of shape (n_samples,)
        Class / condition of every sample (trial or item).
    n_folds : int
        Number of folds; every label needs at least ``n_folds`` samples (groups).
    groups : ndarray of shape (n_samples,), optional
        Item identity; repeats of one item are kept in the same fold
        (``StratifiedGroupKFold``), so an item is never both trained and tested.
    seed : int
        Seed of the shuffling.

    Returns
    -------
    list of (train, test) index arrays.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    labels = _check_runs(labels)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != labels.shape:
            raise ValueError(f"groups has shape {groups.shape}; give one item id per sample ({labels.size}).")
    uniq, counts = np.unique(labels if groups is None else np.unique(np.c_[labels, groups], axis=0)[:, 0],
                             return_counts=True)
    if n_folds < 2 or counts.min() < n_folds:
        unit = "samples" if groups is None else "items"
        raise ValueError(
            f"n_folds={n_folds} but label {uniq[counts.argmin()].item()!r} has only {counts.min()} {unit}; "
            f"choose 2 <= n_folds <= {counts.min()}."
        )
    if groups is None:
        cv = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in cv.split(np.zeros(labels.size), labels)]
    cv = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in cv.split(np.zeros(labels.size), labels, groups)]


def outer_folds(encoding, runs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The outer cross-validation folds ``encoding.outer_cv`` names, as (train, test) row indices.

    ``encoding``: the config's encoding section (``outer_cv``, ``item_folds``).
    """
    if encoding.outer_cv == "leave-one-run-out":
        return leave_one_run_out(runs)
    if encoding.outer_cv == "split":  # item data: test-split folds are numbered from item_folds up
        return [train_test_by_runs(runs, [int(r) for r in np.unique(runs) if r >= encoding.item_folds])]
    return [train_test_by_runs(runs, encoding.outer_cv)]


def make_folds(cv: Any, n_samples: int, runs: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``cv`` argument of the encoding estimators as an explicit list of folds.

    Parameters
    ----------
    cv : int, scikit-learn splitter or iterable of (train, test) index arrays
        An int means ``KFold(cv)`` without shuffling (himalaya's choice), or,
        when ``runs`` is given, ``cv`` folds of whole runs
        (:func:`leave_runs_out`). A splitter gets ``groups=runs``. Boolean
        masks are accepted in place of index arrays.
    n_samples : int
        Rows of X; every index must lie in ``[0, n_samples)``.
    runs : ndarray of shape (n_samples,), optional
        Run label per sample.

    Returns
    -------
    folds : list of (train, test) ndarrays of intp
        Neither side of a fold is empty.
    """
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        if runs is not None:
            n_runs = np.unique(runs).size
            if cv > n_runs:
                raise ValueError(
                    f"cv={cv} folds but runs has only {n_runs} distinct runs; use cv <= {n_runs} "
                    "or split long runs into blocks (brainalign.encoding.splits.blocked_folds)."
                )
            return leave_runs_out(runs, int(cv))
        if cv < 2 or cv > n_samples:
            raise ValueError(f"cv={cv} must be between 2 and n_samples={n_samples}.")
        from sklearn.model_selection import KFold

        folds = list(KFold(int(cv)).split(np.zeros(n_samples)))
    elif hasattr(cv, "split"):
        folds = list(cv.split(np.zeros((n_samples, 1)), groups=runs))
    else:
        try:
            folds = [(np.asarray(t), np.asarray(v)) for t, v in cv]
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "cv must be an int, a scikit-learn splitter or a list of (train, test) index arrays; "
                f"got {type(cv).__name__}."
            ) from exc
    if len(folds) == 0:
        raise ValueError("cv produced no folds; give at least one (train, test) pair.")
    out = []
    for k, (tr, va) in enumerate(folds):
        tr = np.asarray(tr)
        va = np.asarray(va)
        if tr.dtype == bool:
            tr = np.flatnonzero(tr)
        if va.dtype == bool:
            va = np.flatnonzero(va)
        if tr.size == 0 or va.size == 0:
            raise ValueError(f"cv fold {k} has an empty train or test set; check the cv argument.")
        if max(tr.max(), va.max()) >= n_samples or min(tr.min(), va.min()) < 0:
            raise ValueError(
                f"cv fold {k} has indices outside [0, {n_samples}); the folds must index the rows of X."
            )
        out.append((tr.astype(np.intp), va.astype(np.intp)))
    return out
