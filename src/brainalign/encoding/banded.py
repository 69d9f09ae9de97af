"""Banded ridge (one regularisation per feature space) through himalaya, with brainalign's conventions.

A thin wrapper: the solver is himalaya's ``BandedRidgeCV`` (= ``GroupRidgeCV``,
random search of band weights on the simplex, numpy backend); this module adds
the estimator conventions of :class:`brainalign.encoding.RidgeCV` (input
validation with messages naming the argument, ``cv`` as int / splitter / list
of folds, run-wise folds from ``runs``, per-voxel R² from ``score``).
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from brainalign.encoding._validation import check_alphas, check_runs, check_X
from brainalign.encoding.backend import check_backend
from brainalign.encoding.scoring import r2_score
from brainalign.encoding.splits import make_folds

__all__ = ["BandedRidgeCV"]


class BandedRidgeCV(RegressorMixin, BaseEstimator):
    """Banded ridge regression with cross-validated band weights and alpha (himalaya solver).

    Each feature space ``Xs[i]`` is scaled by ``exp(deltas_[i] / 2)``; the
    band weights are searched on the simplex (Dirichlet random search,
    ``n_iter`` candidates, the first one uniform) and, for each, the alpha from
    ``alphas``, per voxel.

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,)
        Candidate regularisation strengths, all > 0.
    cv : int, scikit-learn splitter or list of (train, test) index arrays
        As in :class:`brainalign.encoding.RidgeCV` (with ``runs``, an int
        means that many folds of whole runs).
    n_iter : int
        Number of band-weight candidates.
    concentration : float or sequence of float
        Dirichlet concentration(s) of the random search.
    fit_intercept : bool
    random_state : int
        Seed of the random search.
    n_targets_batch : int or None
        Voxels per batch inside himalaya (memory).
    backend : {"numpy", "torch", "torch_cuda"}
        himalaya's backend for the fit (``himalaya.backend.set_backend``; the
        previous one is restored after). The fitted attributes are numpy arrays
        whatever the backend. ``"torch_cuda"`` where torch sees no GPU raises
        the same ``ValueError`` as :class:`~brainalign.encoding.RidgeCV`.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features_total, n_voxels)
        Weights on the unscaled, concatenated feature spaces.
    deltas_ : ndarray of shape (n_bands, n_voxels)
        Log band scalings.
    best_alphas_ : ndarray of shape (n_voxels,)
    cv_scores_ : ndarray of shape (n_iter, n_voxels)
        Mean CV score (negative MSE) of each candidate's best alpha.
    band_slices_ : list of slice
        Columns of ``coef_`` that belong to each band.
    intercept_ : ndarray of shape (n_voxels,), when ``fit_intercept``
    """

    def __init__(
        self,
        alphas=tuple(np.logspace(0, 4, 9)),
        cv=5,
        n_iter: int = 20,
        concentration=(0.1, 1.0),
        fit_intercept: bool = False,
        random_state: int = 0,
        n_targets_batch: int | None = None,
        backend: str = "numpy",
    ):
        self.alphas = alphas
        self.cv = cv
        self.n_iter = n_iter
        self.concentration = concentration
        self.fit_intercept = fit_intercept
        self.random_state = random_state
        self.n_targets_batch = n_targets_batch
        self.backend = backend

    def _check_Xs(self, Xs: Any) -> list[np.ndarray]:
        if isinstance(Xs, np.ndarray) or not isinstance(Xs, Sequence) or len(Xs) == 0:
            raise ValueError(
                "Xs must be a non-empty list of 2-D arrays, one per feature space (band); "
                f"got {type(Xs).__name__}. For one band use RidgeCV."
            )
        out = [check_X(X, name=f"Xs[{i}]") for i, X in enumerate(Xs)]
        n = {X.shape[0] for X in out}
        if len(n) != 1:
            raise ValueError(f"The feature spaces in Xs have different numbers of samples {sorted(n)}.")
        return out

    def fit(self, Xs, y, runs=None):
        """Fit the model.

        Parameters
        ----------
        Xs : list of ndarray of shape (n_samples, n_features_i)
        y : array-like of shape (n_samples, n_voxels) or (n_samples,)
        runs : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        from himalaya.backend import get_backend, set_backend
        from himalaya.ridge import BandedRidgeCV as _HimalayaBanded

        Xs = self._check_Xs(Xs)
        Y = np.asarray(y, dtype=np.float32)
        ravel = Y.ndim == 1
        if ravel:
            Y = Y[:, None]
        if Y.ndim != 2:
            raise ValueError(f"y must be 2-D (n_samples, n_voxels), got shape {Y.shape}.")
        n = Xs[0].shape[0]
        if Y.shape[0] != n:
            raise ValueError(f"Xs have {n} samples but y has {Y.shape[0]}; give one row of y per sample.")
        if not np.isfinite(Y).all():
            raise ValueError("y contains NaN or inf; impute or drop those voxels before fitting.")
        alphas = check_alphas(self.alphas)
        runs = check_runs(runs, n)
        if int(self.n_iter) < 1:
            raise ValueError(f"n_iter must be >= 1, got {self.n_iter}.")
        folds = make_folds(self.cv, n, runs)

        backend = check_backend(self.backend)
        previous = get_backend()
        to_numpy = set_backend(backend, on_error="raise").to_numpy
        try:
            model = _HimalayaBanded(
                groups="input",
                solver_params=dict(
                    alphas=alphas.astype(np.float32), n_iter=int(self.n_iter),
                    concentration=list(np.atleast_1d(self.concentration)), progress_bar=False,
                    n_targets_batch=self.n_targets_batch, warn=False,
                ),
                fit_intercept=self.fit_intercept, cv=folds, random_state=self.random_state,
            )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning, module="himalaya")
                model.fit(Xs, Y)
        finally:
            set_backend(previous)
        self.coef_ = np.asarray(to_numpy(model.coef_), dtype=np.float32)
        self.deltas_ = np.asarray(to_numpy(model.deltas_))
        self.best_alphas_ = np.asarray(to_numpy(model.best_alphas_))
        self.cv_scores_ = np.asarray(to_numpy(model.cv_scores_))
        edges = np.cumsum([0] + [X.shape[1] for X in Xs])
        self.band_slices_ = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
        self.n_features_in_ = int(edges[-1])
        self.folds_ = folds
        if self.fit_intercept:
            self.intercept_ = np.asarray(to_numpy(model.intercept_), dtype=np.float32)
        if ravel:
            self.coef_ = self.coef_[:, 0]
            self.deltas_ = self.deltas_[:, 0]
            if self.fit_intercept:
                self.intercept_ = self.intercept_[0]
        return self

    def predict(self, Xs, split: bool = False):
        """Predict the voxels; ``split=True`` returns each band's part, shape (n_bands, n, n_voxels)."""
        # NotFittedError (a ValueError), as RidgeCV and scikit-learn raise it
        check_is_fitted(self, "coef_", msg="This %(name)s instance is not fitted yet; call fit(Xs, y) first.")
        Xs = self._check_Xs(Xs)
        if [X.shape[1] for X in Xs] != [s.stop - s.start for s in self.band_slices_]:
            raise ValueError(
                f"Xs have {[X.shape[1] for X in Xs]} features per band but the model was fitted with "
                f"{[s.stop - s.start for s in self.band_slices_]}."
            )
        if split:
            return np.stack([X @ self.coef_[s] for X, s in zip(Xs, self.band_slices_)])
        # one product over the concatenated bands, as himalaya's predict: the same bits as himalaya's own model
        Y_hat = np.hstack(Xs) @ self.coef_
        if self.fit_intercept:
            Y_hat = Y_hat + self.intercept_
        return Y_hat

    def score(self, Xs, y, split: bool = False):
        """Per-voxel R².

        ``split=True`` gives himalaya's per-band ``r2_score_split`` (product
        measure), shape (n_bands, n_voxels), computed on centred ``y`` and
        centred band predictions: the bands add up to the R² of the centred
        prediction.
        """
        Y = np.asarray(y, dtype=np.float32)
        if split:
            from himalaya.scoring import r2_score_split

            # the product measure needs zero-mean data: centre y and each band's part,
            # so the parts add up to the R² of the centred prediction
            parts = self.predict(Xs, split=True)
            parts = parts if parts.ndim == 3 else parts[:, :, None]
            Yc = Y if Y.ndim == 2 else Y[:, None]
            Yc = Yc - Yc.mean(0)
            parts = parts - parts.mean(1, keepdims=True)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning, module="himalaya")
                return np.asarray(r2_score_split(Yc, parts))
        Y_hat = self.predict(Xs)
        if Y.ndim == 1:
            return float(r2_score(Y[:, None], Y_hat[:, None])[0])
        return r2_score(Y, Y_hat)
