"""The one place where the analysis layer fits a ridge encoder.

``brainalign.encoding.RidgeCV`` (default) or himalaya's ``RidgeCV`` — same
interface, one alpha per voxel chosen by run-wise CV on the training samples
only. Change ``ENGINE`` (or the body of :func:`ridge_fit_predict`) to switch
the engine for every analysis.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ENGINE", "ridge_fit_predict", "banded_ridge_fit_predict"]

ENGINE = "brainalign"  # or "himalaya"


def ridge_fit_predict(X_train, Y_train, X_test, alphas, folds, engine: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit ridge with per-voxel alpha chosen by ``folds``; predict ``X_test``.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
    Y_train : ndarray of shape (n_train, n_voxels)
    X_test : ndarray of shape (n_test, n_features)
    alphas : array-like of float
    folds : list of (train_idx, val_idx)
        Indices into the training samples (run-wise folds).
    engine : {"brainalign", "himalaya"}, optional
        Default :data:`ENGINE`.

    Returns
    -------
    Y_pred : ndarray of shape (n_test, n_voxels), float64
    best_alphas : ndarray of shape (n_voxels,)
    """
    engine = ENGINE if engine is None else engine
    if engine == "brainalign":
        from brainalign.encoding import RidgeCV

        model = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), cv=folds, n_workers=1)
    elif engine == "himalaya":
        from himalaya.ridge import RidgeCV

        model = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), cv=folds)
    else:
        raise ValueError(f"engine={engine!r}; use 'brainalign' or 'himalaya'.")
    model.fit(np.asarray(X_train, dtype=np.float32), np.asarray(Y_train, dtype=np.float32))
    pred = np.asarray(model.predict(np.asarray(X_test, dtype=np.float32)), dtype=np.float64)
    return pred, np.asarray(model.best_alphas_, dtype=np.float64)


def banded_ridge_fit_predict(
    Xs_train, Y_train, Xs_test, alphas, folds, n_iter: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Banded ridge (one penalty per feature space; himalaya ``BandedRidgeCV``).

    Parameters
    ----------
    Xs_train, Xs_test : list of ndarray, one per feature space
    alphas, folds : as :func:`ridge_fit_predict`
    n_iter : int
        Random-search iterations over the band weights.
    seed : int

    Returns
    -------
    Y_pred : ndarray of shape (n_test, n_voxels)
    best_alphas : ndarray of shape (n_voxels,)
        Overall alpha per voxel (``1 / sum(deltas)`` is not reported).
    """
    from himalaya.ridge import BandedRidgeCV

    sizes = [x.shape[1] for x in Xs_train]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    model = BandedRidgeCV(
        groups=groups,
        solver_params=dict(n_iter=n_iter, alphas=np.asarray(alphas, dtype=np.float64), progress_bar=False),
        cv=folds,
        random_state=seed,
    )
    model.fit(np.hstack(Xs_train).astype(np.float32), np.asarray(Y_train, dtype=np.float32))
    pred = np.asarray(model.predict(np.hstack(Xs_test).astype(np.float32)), dtype=np.float64)
    return pred, np.asarray(model.best_alphas_, dtype=np.float64)
