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
import scipy.sparse
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from brainalign._utils.threads import blas_limit
from brainalign.encoding.backend import check_backend
from brainalign.encoding.executor import ChunkStore, DaskChunkMapper, fit_fingerprint, local_map_chunks
from brainalign.encoding.memory import check_memory, estimate_fit_bytes
from brainalign.encoding.ridge import solve_ridge_cv
from brainalign.encoding._validation import check_alphas, check_runs, check_X
from brainalign.encoding.scoring import r2_score
from brainalign.encoding.splits import make_folds

__all__ = ["RidgeCV", "ConstantVoxelWarning"]


class ConstantVoxelWarning(UserWarning):
    """Some voxels are constant over the training samples and were not fitted."""


def _as_lazy_2d(Y: Any) -> tuple[Any, bool]:
    """Y as a 2-D array-like that supports ``Y[:, a:b]``; ravel flag for 1-D input."""
    if Y is None:
        raise ValueError("RidgeCV requires y to be passed, but the target y is None.")
    if scipy.sparse.issparse(Y):
        raise TypeError("Sparse data was passed for y, but dense data is required; use y.toarray().")
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
    backend : {"numpy", "torch", "torch_cuda"}
        Where the products that grow with the number of voxels run
        (:mod:`brainalign.encoding.backend`): numpy (default), torch on the
        CPU, or torch on the current CUDA GPU (float32; each chunk of ``y`` is
        copied to the GPU and its results back, so ``y`` may exceed the GPU's
        memory; raise ``chunk_voxels`` to 8192-32768 there). The per-fold
        decompositions stay in numpy float64. Every backend selects the same
        alphas, except where two alphas score equal to float32 rounding, with
        scores and predictions equal to float32 rounding (relative to ``y``'s
        scale). ``"torch_cuda"`` where torch sees no GPU raises a
        ``ValueError`` saying what to install or choose instead.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_voxels) or (n_features,)
        0 for voxels that are constant over the training samples. float64
        when the fit's ``X`` is float64, else float32 (as himalaya: the output
        follows the input). The products that scale with the voxels are
        float32 in both cases, so float64 outputs are accurate to about 1e-6
        relative, not to float64 precision (docs/choices.md).
    intercept_ : ndarray of shape (n_voxels,) or float
        Only when ``fit_intercept``; same dtype as ``coef_``. A constant
        voxel's intercept is its constant, so ``predict`` returns it.
    best_alphas_ : ndarray of shape (n_voxels,)
        Selected alpha per voxel; NaN for constant voxels.
    cv_scores_ : ndarray of shape (n_voxels,)
        Mean CV score (negative MSE) of the selected alpha, as himalaya's
        ``cv_scores_`` (which includes a ``1e-10 * log(alpha)`` tie-break).
        Alphas within float32 rounding of a voxel's best are re-scored in
        float64, so the selection is that of himalaya's float64 fit.
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
        backend: str = "numpy",
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
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # one column of y per voxel
        tags.input_tags.sparse = False
        return tags

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
        X = check_X(X, keep_float64=True)
        out_dtype = X.dtype  # outputs follow X: float64 stays float64, anything else is float32
        X = X.astype(np.float32, copy=False)  # the solver's products are float32 either way
        Y, ravel = _as_lazy_2d(y)
        if Y.shape[0] != X.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} samples but y has {Y.shape[0]}; give one row of y per row of X."
            )
        alphas = check_alphas(self.alphas)
        runs = check_runs(runs, X.shape[0])
        if not isinstance(self.chunk_voxels, numbers.Integral) or self.chunk_voxels < 1:
            raise ValueError(f"chunk_voxels must be a positive int, got {self.chunk_voxels!r}.")
        if self.executor not in ("local", "dask"):
            raise ValueError(f"executor must be 'local' or 'dask', got {self.executor!r}.")
        if not isinstance(self.blas_threads, numbers.Integral) or self.blas_threads < 1:
            raise ValueError(f"blas_threads must be a positive int, got {self.blas_threads!r}.")
        backend = check_backend(self.backend)
        if backend == "torch_cuda" and self.executor == "dask":
            raise ValueError("executor='dask' with backend='torch_cuda' would put every dask worker on the same GPU; "
                             "use executor='local' (this process drives the GPU, chunk after chunk).")
        folds = make_folds(self.cv, X.shape[0], runs)

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
                blas_threads=int(self.blas_threads),
                # the backend rounds differently, so it is part of the fit; numpy is left out so that stores
                # written before backends existed stay valid
                **({} if backend == "numpy" else {"backend": backend})))
            mapper = self.store_.wrap(mapper)
        with blas_limit(int(self.blas_threads)):
            res = solve_ridge_cv(
                X, Y, alphas, folds, fit_intercept=self.fit_intercept, local_alpha=self.local_alpha,
                chunk_voxels=int(self.chunk_voxels), map_chunks=mapper, blas_threads=int(self.blas_threads),
                backend=backend, **(self.solver_params or {}),
            )
        n_bad = int((~res.valid).sum())
        if n_bad:
            warnings.warn(
                f"{n_bad} of {res.valid.size} voxels are constant over the training samples and were "
                "excluded (coef 0, best_alphas_ and scores NaN).",
                ConstantVoxelWarning,
                stacklevel=2,
            )
        self.coef_ = res.coef.astype(out_dtype, copy=False)
        self.best_alphas_ = res.best_alphas
        self.cv_scores_ = res.cv_scores
        self.cv_scores_per_alpha_ = res.cv_scores_all
        self.valid_voxels_ = res.valid
        self.n_excluded_voxels_ = n_bad
        self.n_features_in_ = X.shape[1]
        self.folds_ = folds
        if self.fit_intercept:
            self.intercept_ = res.intercept.astype(out_dtype, copy=False)
        if ravel:
            self.coef_ = self.coef_[:, 0]
            if self.fit_intercept:
                self.intercept_ = self.intercept_[0]
        return self

    # ------------------------------------------------------------ predict
    def _check_fitted_X(self, X) -> np.ndarray:
        # NotFittedError (a ValueError and an AttributeError), as scikit-learn raises it
        check_is_fitted(self, "coef_", msg="This %(name)s instance is not fitted yet; call fit(X, y) first.")
        X = check_X(X, keep_float64=True).astype(self.coef_.dtype, copy=False)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but RidgeCV is expecting {self.n_features_in_} features "
                "as input (n_features_in_ of the fit)."
            )
        return X

    def predict(self, X):
        """Predict the voxels.

        Parameters
        ----------
        X : array-like of shape (n_samples_test, n_features)

        Returns
        -------
        Y_hat : ndarray of shape (n_samples_test, n_voxels) or (n_samples_test,)
            In the dtype of ``coef_`` (float64 when the fit's X was float64, else float32).
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
        Y = np.asarray(y, dtype=Y_hat.dtype)
        if Y.shape != Y_hat.shape:
            raise ValueError(f"y has shape {Y.shape} but the prediction has shape {Y_hat.shape}.")
        if Y.ndim == 1:
            r2 = r2_score(Y[:, None], Y_hat[:, None])
            return float(r2[0]) if self.valid_voxels_[0] else float("nan")
        r2 = r2_score(Y, Y_hat)
        r2[~self.valid_voxels_] = np.nan
        return r2
