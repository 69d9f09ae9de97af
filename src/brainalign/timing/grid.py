"""From stimulus events to the scanner's TR grid, and train-only dimensionality reduction.

``stimulus_design`` (in :mod:`brainalign.stimuli.events`, where the study loaders use it) says how much of every TR each stimulus occupied;
multiplying it by a (n_stimuli, dim) feature table gives TR-wise features.
Scaling and PCA are fitted on training TRs only and applied to test TRs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainalign.stimuli.events import stimulus_design  # re-exported: the grid module's name before stimuli/ took it

__all__ = ["stimulus_design", "TrainPCA", "lanczos_kernel", "lanczos_resample"]


@dataclass
class TrainPCA:
    """Projection on the first ``k`` principal axes of the training rows.

    Data are expected centred by the training mean (as after
    :func:`brainalign.encoding.delays.zscore_with_train`). Axes whose singular value is below ``rtol`` times
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


def lanczos_kernel(t: np.ndarray, window: int = 3) -> np.ndarray:
    """Lanczos window ``window · sin(πt) · sin(πt/window) / (πt)²`` (1 at t = 0, 0 beyond ±window)."""
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        val = window * np.sin(np.pi * t) * np.sin(np.pi * t / window) / (np.pi**2 * t**2)
    val[t == 0] = 1.0
    val[np.abs(t) > window] = 0.0
    return val


def lanczos_resample(
    data: np.ndarray, old_times: np.ndarray, new_times: np.ndarray, window: int = 3,
    cutoff_mult: float = 1.0, chunk: int = 1024,
) -> np.ndarray:
    """Resample features given at event times onto new (TR) times with a Lanczos low-pass filter.

    The same filter as the Huth lab's ``lanczosinterp2D`` (cutoff = the new
    sampling rate × ``cutoff_mult``), written as one matrix product per chunk
    of new times instead of a Python loop over them.

    Parameters
    ----------
    data : ndarray of shape (n_old, n_features)
        One row per event (e.g. per word or frame).
    old_times : ndarray of shape (n_old,)
        Event times in seconds.
    new_times : ndarray of shape (n_new,)
        Target times (e.g. TR midpoints); at least 2, increasing.
    window : int
        Lobes of the Lanczos window.
    cutoff_mult : float
        Multiplies the cutoff frequency (1 = Nyquist of the new rate).
    chunk : int
        New times per matrix product (memory ~ chunk × n_old).

    Returns
    -------
    ndarray of shape (n_new, n_features), float32
    """
    data = np.asarray(data, dtype=np.float64)
    old_times = np.asarray(old_times, dtype=np.float64)
    new_times = np.asarray(new_times, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != old_times.shape[0]:
        raise ValueError(
            f"data must be (n_old, n_features) with one row per old time: data {data.shape}, old_times "
            f"{old_times.shape}."
        )
    if new_times.ndim != 1 or new_times.size < 2 or np.any(np.diff(new_times) <= 0):
        raise ValueError("new_times must be at least 2 increasing times (seconds).")
    if window < 1 or cutoff_mult <= 0:
        raise ValueError(f"window must be >= 1 and cutoff_mult > 0, got {window} and {cutoff_mult}.")
    cutoff = cutoff_mult / np.mean(np.diff(new_times))
    out = np.empty((new_times.size, data.shape[1]), dtype=np.float64)
    for start in range(0, new_times.size, chunk):
        t = new_times[start : start + chunk, None] - old_times[None, :]
        out[start : start + chunk] = lanczos_kernel(cutoff * t, window) @ data
    return out.astype(np.float32)
