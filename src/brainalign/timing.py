"""From stimulus events to the scanner's TR grid, and train-only feature scaling.

``stimulus_design`` says how much of every TR each stimulus occupied;
multiplying it by a (n_stimuli, dim) feature table gives TR-wise features.
Scaling and PCA are fitted on training TRs only and applied to test TRs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["stimulus_design", "TrainScaler", "TrainPCA"]


def stimulus_design(
    events: pd.DataFrame, runs: np.ndarray, tr: float, stimuli: list[str]
) -> np.ndarray:
    """Fraction of every TR covered by every stimulus.

    Parameters
    ----------
    events : DataFrame with columns run, onset, duration, stimulus
        Onsets in seconds from the start of the run.
    runs : ndarray of shape (n_trs,)
        Run label of every TR (runs contiguous); TR k of a run spans
        [k·tr, (k+1)·tr).
    tr : float
    stimuli : list of str
        Column order of the result.

    Returns
    -------
    ndarray of shape (n_trs, n_stimuli), float32, values in [0, 1]

    Raises
    ------
    ValueError
        For an event of an unknown stimulus or run, or one that ends after its run.
    """
    if tr <= 0:
        raise ValueError(f"tr must be > 0 seconds, got {tr}.")
    runs = np.asarray(runs)
    col = {s: i for i, s in enumerate(stimuli)}
    design = np.zeros((runs.size, len(stimuli)), dtype=np.float64)
    starts = {r: int(np.flatnonzero(runs == r)[0]) for r in pd.unique(runs)}
    lengths = {r: int((runs == r).sum()) for r in starts}
    for ev in events.itertuples(index=False):
        if ev.run not in starts:
            raise ValueError(f"an event refers to run {ev.run!r}, which is not in the fMRI runs {list(starts)}.")
        if ev.stimulus not in col:
            raise ValueError(f"an event refers to stimulus {ev.stimulus!r}, which has no features.")
        end = ev.onset + ev.duration
        if end > lengths[ev.run] * tr + 1e-6:
            raise ValueError(
                f"event '{ev.stimulus}' of run {ev.run} ends at {end:.2f} s, after the run's last TR "
                f"({lengths[ev.run] * tr:.2f} s); check the TR and the events' onsets."
            )
        first, last = int(np.floor(ev.onset / tr)), int(np.ceil(end / tr))
        for k in range(first, last):
            overlap = min(end, (k + 1) * tr) - max(ev.onset, k * tr)
            if overlap > 0:
                design[starts[ev.run] + k, col[ev.stimulus]] += overlap / tr
    return design.astype(np.float32)


@dataclass
class TrainScaler:
    """Column z-scoring with statistics of the training rows only."""

    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> TrainScaler:
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(0)
        sd = X.std(0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_).astype(np.float32)


@dataclass
class TrainPCA:
    """Projection on the first ``k`` principal axes of the training rows.

    Data are expected centred by the training mean (as after
    :class:`TrainScaler`). Axes whose singular value is below ``rtol`` times
    the largest are dropped: they hold rounding noise, not signal. With ``k``
    at least the rank of the training features this is a rotation, so ridge
    predictions do not change.
    """

    n_components: int
    rtol: float = 1e-6
    components_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> TrainPCA:
        X = np.asarray(X, dtype=np.float64)
        k = min(self.n_components, *X.shape)
        _, s, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
        rank = int((s > self.rtol * s[0]).sum()) if s.size and s[0] > 0 else 0
        self.components_ = vt[: max(1, min(k, rank))]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) @ self.components_.T).astype(np.float32)
