"""Planted-truth brains: data whose answer is known, to test the pipeline.

Every generator is seeded and returns the ground truth it planted, so tests
can check that an effect that exists is found and one that does not is not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PlantedEncoding", "planted_encoding"]


@dataclass
class PlantedEncoding:
    """A feature space, the responses it drives, and what was planted.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float32
        Features that drive the informative voxels.
    X_null : ndarray of shape (n_samples, n_features), float32
        Independent features of the same size and autocorrelation (a null space).
    Y : ndarray of shape (n_samples, n_voxels), float32
    runs : ndarray of shape (n_samples,), int
    informative : ndarray of shape (n_voxels,), bool
        True where the voxel depends on ``X``.
    r2_true : ndarray of shape (n_voxels,)
        Planted fraction of variance explained by ``X`` (0 for null voxels).
    """

    X: np.ndarray
    X_null: np.ndarray
    Y: np.ndarray
    runs: np.ndarray
    informative: np.ndarray
    r2_true: np.ndarray


def _ar1(rng: np.random.Generator, shape: tuple[int, int], runs: np.ndarray, phi: float) -> np.ndarray:
    """Unit-variance AR(1) noise restarted at every run boundary."""
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    scale = np.sqrt(1.0 - phi**2)
    for t in range(shape[0]):
        if t == 0 or runs[t] != runs[t - 1]:
            out[t] = e[t]
        else:
            out[t] = phi * out[t - 1] + scale * e[t]
    return out


def planted_encoding(
    n_runs: int = 6,
    n_samples_per_run: int = 100,
    n_features: int = 20,
    n_voxels: int = 200,
    informative_fraction: float = 0.5,
    r2: float = 0.3,
    autocorrelation: float = 0.3,
    seed: int = 0,
) -> PlantedEncoding:
    """Voxels that are a noisy linear readout of ``X``, and null voxels that are not.

    Parameters
    ----------
    n_runs, n_samples_per_run : int
        Design: ``n_runs`` contiguous runs.
    n_features : int
        Dimensionality of ``X`` and ``X_null``.
    n_voxels : int
    informative_fraction : float in [0, 1]
        Share of voxels driven by ``X``; the rest are pure AR(1) noise.
    r2 : float in (0, 1)
        Planted variance fraction explained by ``X`` in informative voxels.
    autocorrelation : float in [0, 1)
        AR(1) coefficient of features and noise within runs.
    seed : int

    Returns
    -------
    PlantedEncoding
    """
    if not 0 < r2 < 1:
        raise ValueError(f"r2 must be in (0, 1), got {r2}.")
    if not 0 <= informative_fraction <= 1:
        raise ValueError(f"informative_fraction must be in [0, 1], got {informative_fraction}.")
    rng = np.random.default_rng(seed)
    n = n_runs * n_samples_per_run
    runs = np.repeat(np.arange(n_runs), n_samples_per_run)
    X = _ar1(rng, (n, n_features), runs, autocorrelation)
    X_null = _ar1(rng, (n, n_features), runs, autocorrelation)
    informative = np.zeros(n_voxels, dtype=bool)
    informative[: int(round(informative_fraction * n_voxels))] = True
    rng.shuffle(informative)
    W = rng.standard_normal((n_features, n_voxels))
    signal = X @ W
    signal /= signal.std(0, keepdims=True)
    noise = _ar1(rng, (n, n_voxels), runs, autocorrelation)
    noise /= noise.std(0, keepdims=True)
    r2_true = np.where(informative, r2, 0.0)
    Y = np.sqrt(r2_true) * signal + np.sqrt(1.0 - r2_true) * noise
    return PlantedEncoding(
        X=X.astype(np.float32),
        X_null=X_null.astype(np.float32),
        Y=Y.astype(np.float32),
        runs=runs,
        informative=informative,
        r2_true=r2_true,
    )
