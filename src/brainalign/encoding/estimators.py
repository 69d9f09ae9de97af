"""scikit-learn-style estimators over the ridge solver functions (himalaya's interface).

``RidgeCV`` has the constructor, methods and fitted attributes of
``himalaya.ridge.RidgeCV`` (numpy backend) and gives the same results on the
same folds, faster and with Y streamed from disk in voxel chunks.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.model_selection import KFold

from brainalign._utils.threads import blas_limit
from brainalign.encoding.executor import ChunkStore, DaskChunkMapper, fit_fingerprint, local_map_chunks
from brainalign.encoding.memory import check_memory, estimate_fit_bytes
from brainalign.encoding.ridge import solve_ridge_cv
from brainalign.encoding.splits import leave_runs_out

__all__ = ["RidgeCV", "ConstantVoxelWarning"]


class ConstantVoxelWarning(UserWarning):
    """Some voxels are constant over the training samples and were not fitted."""


def _check_X(X: Any, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        fix = " Use X.reshape(-1, 1) for a single feature." if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}.{fix}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}); give at least one sample and one feature.")
    X = X.astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(1))
        raise ValueError(
            f"{name} contains NaN or inf in {rows.size} sample(s) (first: row {rows[0]}); "
            "impute or drop those samples (and the matching rows of Y) before fitting."
        )
    return X


def _as_lazy_2d(Y: Any) -> tuple[Any, bool]:
    """Y as a 2-D array-like that supports ``Y[:, a:b]``; ravel flag for 1-D input."""
    lazy = hasattr(Y, "shape") and hasattr(Y, "__getitem__") and hasattr(Y, "dtype")
    if not lazy:
        Y = np.asarray(Y)
    if len(Y.shape) == 1:
        return np.asarray(Y)[:, None], True
    if len(Y.shape) != 2:
        raise ValueError(f"Y must be 2-D (n_samples, n_voxels), got shape {tuple(Y.shape)}.")
    if not np.issubdtype(np.dtype(Y.dtype), np.number):
        raise ValueError(f"Y must hold real numbers, got dtype {Y.dtype}.")
    if Y.shape[1] == 0:
        raise ValueError("Y has no voxels (shape[1] == 0).")
    return Y, False


def _check_alphas(alphas: Any) -> np.ndarray:
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {a.shape}.")
    if not np.isfinite(a).all() or (a <= 0).any():
        raise ValueError(
            f"alphas must be finite and > 0, got {a[~(np.isfinite(a) & (a > 0))][:5].tolist()}; "
            "use e.g. np.logspace(-2, 5, 15)."
        )
    return a


def _make_folds(cv: Any, n_samples: int, runs: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
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


def _r2(Y: np.ndarray, Y_hat: np.ndarray) -> np.ndarray:
    err = ((Y - Y_hat) ** 2).sum(0, dtype=np.float64)
    var = ((Y - Y.mean(0, dtype=np.float64)) ** 2).sum(0, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - err / var
    r2[var == 0] = 0.0  # himalaya's convention
    return r2


class RidgeCV(RegressorMixin, BaseEstimator):
    """Ridge regression with a cross-validated alpha per voxel (himalaya-compatible).

    Solves ``b* = argmin ||X b - y||² + α ||b||²`` for every voxel ``y``, with
    ``α`` chosen from ``alphas`` by the mean validation score over ``cv`` folds
    (negative mean squared error, as himalaya's ``RidgeCV``), then refits on
    all the data with each voxel's own alpha.

    Parameters
    ----------
    alphas : array-like of shape (n_alphas,)
        Candidate regularisation strengths, all > 0.
    cv : int, scikit-learn splitter or list of (train, test) index arrays
        An int means ``KFold(cv)`` without shuffling (himalaya's choice), or,
        when ``runs`` is given to :meth:`fit`, ``cv`` folds of whole runs.
        Splitters get ``groups=runs``.
    fit_intercept : bool
        If False, X and Y must be centred over samples.
    local_alpha : bool
        One alpha per voxel (True) or one shared by all voxels (False).
    chunk_voxels : int
        Voxels processed at a time; bounds the memory (see ``memory_limit``).
    executor : {"local", "dask"}
        Where chunks are computed: this process, or a dask.distributed cluster.
    client : distributed.Client, str or None
        For ``executor="dask"``: a client, a scheduler address, or None to
        start a ``LocalCluster`` with ``n_workers`` workers for the fit.
    n_workers : int
        Workers of that LocalCluster.
    blas_threads : int
        BLAS/LAPACK threads of every product of the fit, in this process and
        in each dask worker alike (default 1). The last bits of a product
        depend on the thread count, so pinning it is what makes
        ``executor="dask"`` give the local result bit for bit on any machine
        (docs/reliability.md); raise it to use more cores for one local fit.
    memory_limit : int, "auto" or None
        Bytes the fit may allocate (``"auto"``: the available memory; None: no
        preflight). The fit refuses to start, naming a ``chunk_voxels`` that
        fits, when the estimated peak exceeds it.
    store : str, path or None
        Directory where every finished voxel chunk is saved (``.npz``); a
        rerun of the same fit reads them back and computes only the missing
        chunks. The values of ``y`` are not hashed: use one store per ``y``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_voxels) or (n_features,)
        float32; 0 for voxels that are constant over the training samples.
    intercept_ : ndarray of shape (n_voxels,) or float
        Only when ``fit_intercept``.
    best_alphas_ : ndarray of shape (n_voxels,)
        Selected alpha per voxel; NaN for constant voxels.
    cv_scores_ : ndarray of shape (n_voxels,)
        Mean CV score (negative MSE) of the selected alpha, as himalaya's
        ``cv_scores_`` (which includes a ``1e-10 * log(alpha)`` tie-break).
    cv_scores_per_alpha_ : ndarray of shape (n_alphas, n_voxels)
        Mean CV score of every alpha.
    valid_voxels_ : ndarray of shape (n_voxels,), bool
        False for voxels excluded as constant.
    n_excluded_voxels_ : int
    n_features_in_ : int
    """

    def __init__(
        self,
        alphas=(0.1, 1.0),
        cv=5,
        fit_intercept: bool = False,
        local_alpha: bool = True,
        chunk_voxels: int = 2048,
        executor: str = "local",
        client: Any = None,
        n_workers: int = 2,
        blas_threads: int = 1,
        memory_limit: int | str | None = "auto",
        store: str | None = None,
        solver_params: dict | None = None,
    ):
        self.alphas = alphas
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.local_alpha = local_alpha
        self.chunk_voxels = chunk_voxels
        self.executor = executor
        self.client = client
        self.n_workers = n_workers
        self.blas_threads = blas_threads
        self.memory_limit = memory_limit
        self.store = store
        self.solver_params = solver_params

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, runs=None):
        """Fit the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples, n_voxels) or (n_samples,)
            A numpy array, ``np.memmap``, h5py or zarr dataset; read
            ``chunk_voxels`` columns at a time, so it need not fit in memory.
        runs : array-like of shape (n_samples,), optional
            Run label per sample; with an int ``cv`` it makes run-wise folds.

        Returns
        -------
        self
        """
        X = _check_X(X)
        Y, ravel = _as_lazy_2d(y)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples but y has {Y.shape[0]}; give one row of y per row of X."
            )
        alphas = _check_alphas(self.alphas)
        if runs is not None:
            runs = np.asarray(runs)
            if runs.shape != (X.shape[0],):
                raise ValueError(f"runs has shape {runs.shape}; give one run label per sample ({X.shape[0]}).")
        if not isinstance(self.chunk_voxels, numbers.Integral) or self.chunk_voxels < 1:
            raise ValueError(f"chunk_voxels must be a positive int, got {self.chunk_voxels!r}.")
        if self.executor not in ("local", "dask"):
            raise ValueError(f"executor must be 'local' or 'dask', got {self.executor!r}.")
        if not isinstance(self.blas_threads, numbers.Integral) or self.blas_threads < 1:
            raise ValueError(f"blas_threads must be a positive int, got {self.blas_threads!r}.")
        folds = _make_folds(self.cv, X.shape[0], runs)

        if self.memory_limit is not None:
            in_flight = 1 if self.executor == "local" else 3 * self.n_workers
            est = estimate_fit_bytes(
                X.shape[0], X.shape[1], Y.shape[1], alphas.size, folds,
                min(self.chunk_voxels, Y.shape[1]), in_flight,
            )
            check_memory(est, None if self.memory_limit == "auto" else int(self.memory_limit))

        mapper = local_map_chunks
        if self.executor == "dask":
            mapper = DaskChunkMapper(self.client, n_workers=self.n_workers)
        self.store_ = None
        if self.store is not None:
            self.store_ = ChunkStore(self.store, fit_fingerprint(
                X, tuple(Y.shape), alphas, folds, fit_intercept=self.fit_intercept,
                local_alpha=self.local_alpha, chunk_voxels=int(self.chunk_voxels),
                blas_threads=int(self.blas_threads)))
            mapper = self.store_.wrap(mapper)
        with blas_limit(int(self.blas_threads)):
            res = solve_ridge_cv(
                X, Y, alphas, folds, fit_intercept=self.fit_intercept, local_alpha=self.local_alpha,
                chunk_voxels=int(self.chunk_voxels), map_chunks=mapper, blas_threads=int(self.blas_threads),
                **(self.solver_params or {}),
            )
        n_bad = int((~res.valid).sum())
        if n_bad:
            warnings.warn(
                f"{n_bad} of {res.valid.size} voxels are constant over the training samples and were "
                "excluded (coef 0, best_alphas_ and scores NaN).",
                ConstantVoxelWarning,
                stacklevel=2,
            )
        self.coef_ = res.coef
        self.best_alphas_ = res.best_alphas
        self.cv_scores_ = res.cv_scores
        self.cv_scores_per_alpha_ = res.cv_scores_all
        self.valid_voxels_ = res.valid
        self.n_excluded_voxels_ = n_bad
        self.n_features_in_ = X.shape[1]
        self.folds_ = folds
        if self.fit_intercept:
            self.intercept_ = res.intercept
        if ravel:
            self.coef_ = self.coef_[:, 0]
            if self.fit_intercept:
                self.intercept_ = self.intercept_[0]
        return self

    # ------------------------------------------------------------ predict
    def _check_fitted_X(self, X) -> np.ndarray:
        if not hasattr(self, "coef_"):
            raise ValueError("This RidgeCV is not fitted yet; call fit(X, y) first.")
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features but the model was fitted with {self.n_features_in_}."
            )
        return X

    def predict(self, X):
        """Predict the voxels.

        Parameters
        ----------
        X : array-like of shape (n_samples_test, n_features)

        Returns
        -------
        Y_hat : ndarray of shape (n_samples_test, n_voxels) or (n_samples_test,), float32
        """
        X = self._check_fitted_X(X)
        Y_hat = X @ self.coef_
        if self.fit_intercept:
            Y_hat = Y_hat + self.intercept_
        return Y_hat

    def score(self, X, y):
        """Per-voxel R² of the prediction (himalaya's convention: 0 where y is constant).

        Parameters
        ----------
        X : array-like of shape (n_samples_test, n_features)
        y : array-like of shape (n_samples_test, n_voxels) or (n_samples_test,)

        Returns
        -------
        r2 : ndarray of shape (n_voxels,) or float
            NaN for voxels excluded at fit time.
        """
        Y_hat = self.predict(X)
        Y = np.asarray(y, dtype=np.float32)
        if Y.shape != Y_hat.shape:
            raise ValueError(f"y has shape {Y.shape} but the prediction has shape {Y_hat.shape}.")
        if Y.ndim == 1:
            r2 = _r2(Y[:, None], Y_hat[:, None])
            return float(r2[0]) if self.valid_voxels_[0] else float("nan")
        r2 = _r2(Y, Y_hat)
        r2[~self.valid_voxels_] = np.nan
        return r2
