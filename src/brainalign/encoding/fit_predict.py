"""Fit on the training samples, predict the test samples: the one entry point of the analyses' encoders.

Both functions are the encoding estimators (:class:`~brainalign.encoding.RidgeCV`,
:class:`~brainalign.encoding.BandedRidgeCV`) used the way every analysis uses
them: alphas (and band weights) chosen by run-wise CV on the training samples
only, then a prediction of held-out samples. Change :data:`ENGINE` to fit the
plain ridge of every analysis with himalaya's ``RidgeCV`` instead (a check that
the two agree).
"""
from __future__ import annotations

import numpy as np

from brainalign.encoding.banded import BandedRidgeCV
from brainalign.encoding.estimators import RidgeCV

__all__ = ["ENGINE", "ridge_fit_predict", "banded_ridge_fit_predict"]

#: engine of :func:`ridge_fit_predict` when none is named: "brainalign" or "himalaya"
ENGINE = "brainalign"


def ridge_fit_predict(X_train, Y_train, X_test, alphas, folds, engine: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit ridge with per-voxel alpha chosen by ``folds``; predict ``X_test``.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
    Y_train : ndarray of shape (n_train, n_voxels)
    X_test : ndarray of shape (n_test, n_features)
    alphas : array-like of shape (n_alphas,)
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
        model = RidgeCV(alphas=np.asarray(alphas, dtype=np.float64), cv=folds, n_workers=1)
    elif engine == "himalaya":
        from himalaya.ridge import RidgeCV as HimalayaRidgeCV

        model = HimalayaRidgeCV(alphas=np.asarray(alphas, dtype=np.float64), cv=folds)
    else:
        raise ValueError(f"engine={engine!r}; use 'brainalign' or 'himalaya'.")
    model.fit(np.asarray(X_train, dtype=np.float32), np.asarray(Y_train, dtype=np.float32))
    pred = np.asarray(model.predict(np.asarray(X_test, dtype=np.float32)), dtype=np.float64)
    return pred, np.asarray(model.best_alphas_, dtype=np.float64)


def banded_ridge_fit_predict(
    Xs_train, Y_train, Xs_test, alphas, folds, n_iter: int = 20, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Banded ridge (one penalty per feature space, :class:`~brainalign.encoding.BandedRidgeCV`); predict ``Xs_test``.

    Parameters
    ----------
    Xs_train : list of ndarray of shape (n_train, n_features_i), one per feature space
    Y_train : ndarray of shape (n_train, n_voxels)
    Xs_test : list of ndarray of shape (n_test, n_features_i)
    alphas : array-like of shape (n_alphas,)
    folds : list of (train_idx, val_idx)
        As :func:`ridge_fit_predict`.
    n_iter : int
        Random-search iterations over the band weights.
    seed : int
        Seed of the random search.

    Returns
    -------
    Y_pred : ndarray of shape (n_test, n_voxels), float64
    best_alphas : ndarray of shape (n_voxels,)
        Overall alpha per voxel, ``1 / sum(exp(deltas))``.
    """
    model = BandedRidgeCV(alphas=alphas, cv=folds, n_iter=n_iter, random_state=seed)
    model.fit(list(Xs_train), np.asarray(Y_train, dtype=np.float32))
    pred = np.asarray(model.predict(list(Xs_test)), dtype=np.float64)
    return pred, np.asarray(model.best_alphas_, dtype=np.float64)
