"""The design matrix of one fit: train-only scaling and PCA, then run-aware hemodynamic delays."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from brainalign.encoding.delays import make_delayed, zscore_with_train
from brainalign.timing.grid import TrainPCA

if TYPE_CHECKING:
    from brainalign.config import TimingSpec

__all__ = ["design_delays", "prepare_design"]


def design_delays(timing: TimingSpec, is_items: bool) -> list[int]:
    """Hemodynamic delays of time series; item data (betas) have no time axis, so none.

    Parameters
    ----------
    timing : TimingSpec
        The config's ``timing`` section (its ``delays``, in TRs).
    is_items : bool
        True for item data (NSD, GLMsingle betas: ``Experiment.is_items``).

    Returns
    -------
    list of int
        ``[0]`` for item data, else ``timing.delays``.
    """
    return [0] if is_items else list(timing.delays)


def prepare_design(
    X: np.ndarray, runs: np.ndarray, train: np.ndarray, test: np.ndarray, delays: list[int], k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Scale and reduce with training statistics only, then add run-aware delays.

    Returns
    -------
    X_train, X_test : ndarrays of shape (n_train, n_delays * k) and (n_test, n_delays * k)
    """
    Z = zscore_with_train(X, train)
    if k is not None and k < Z.shape[1]:
        Z = TrainPCA(k).fit(Z[train]).transform(Z)
    D = make_delayed(Z, delays, runs)
    return D[train], D[test]
