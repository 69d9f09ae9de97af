"""Many whole fits (e.g. layers x prompts x models) against the same voxels, locally or on dask.

Voxel chunks are the unit of :class:`~brainalign.encoding.RidgeCV`'s own
``executor="dask"``; when there are many feature spaces for one ``Y``, whole
fits are the better unit: ``Y`` is sent to the cluster once and each task fits
one feature space in a worker (the estimator inside runs locally there). The
client comes from :func:`brainalign._utils.cluster.dask_client`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.base import clone

from brainalign._utils.cluster import dask_client

__all__ = ["fit_many"]


def _fit_one(estimator, X, Y, runs):
    return clone(estimator).set_params(executor="local").fit(X, Y, runs=runs)


def fit_many(
    estimator: Any,
    Xs: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    Y: np.ndarray,
    runs: np.ndarray | None = None,
    executor: str = "local",
    client: Any = None,
    n_workers: int = 2,
) -> list | dict:
    """Fit one clone of ``estimator`` per feature space, all against the same ``Y``.

    Parameters
    ----------
    estimator : RidgeCV (or any estimator with ``fit(X, y, runs=...)`` and an
        ``executor`` parameter)
        Template; it is cloned for every fit, never modified.
    Xs : list of ndarray or dict name -> ndarray, each of shape (n_samples, n_features_i)
        Each is fitted in its own dtype on either executor (float64 X gives float64 outputs).
    Y : ndarray of shape (n_samples, n_voxels)
        In memory (it is shipped to the workers once).
    runs : ndarray of shape (n_samples,), optional
    executor : {"local", "dask"}
    client : distributed.Client, str or None
        For ``"dask"``: a client, a scheduler address, or None for a
        ``LocalCluster`` of ``n_workers`` single-threaded workers.
    n_workers : int

    Returns
    -------
    list or dict of fitted estimators, in the order (or with the keys) of ``Xs``.
    """
    if executor not in ("local", "dask"):
        raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}.")
    names = list(Xs.keys()) if isinstance(Xs, Mapping) else None
    items = list(Xs.values()) if names is not None else list(Xs)
    if not items:
        raise ValueError("Xs is empty; give at least one feature space.")
    Y = np.asarray(Y, dtype=np.float32)
    if executor == "local":
        fitted = [_fit_one(estimator, X, Y, runs) for X in items]
    else:
        blas_threads = int(getattr(estimator, "blas_threads", 1))
        with dask_client(n_workers, client, blas_threads, keep=False) as c:
            Y_f = c.scatter(Y, broadcast=True, hash=False)
            # each X as given, as the local path fits it (RidgeCV's outputs follow X's dtype: float64 stays float64)
            futures = [c.submit(_fit_one, estimator, np.asarray(X), Y_f, runs, pure=False) for X in items]
            fitted = c.gather(futures)
    return dict(zip(names, fitted)) if names is not None else fitted
