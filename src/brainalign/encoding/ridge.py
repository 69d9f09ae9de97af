"""Plain solver functions for voxelwise ridge regression with cross-validated alphas.

The layering follows himalaya: these functions hold the numerics (and the local, one-chunk-after-the-other
executor :func:`local_map_chunks`; :mod:`brainalign.encoding.executor` adds the dask one), the
scikit-learn-style estimator in :mod:`brainalign.encoding.estimators` only
validates inputs and stores results.

What makes it fast (measured in ``benchmarks/README.md``):

* one eigendecomposition per fold, of the smaller Gram matrix (``XᵀX`` when
  ``n_samples >= n_features``, the linear kernel ``XXᵀ`` otherwise), in
  float64 and single-threaded LAPACK; both forms give the same thin SVD
  ``X = U diag(s) Vᵀ`` and therefore the same results;
* ``B = Uᵀ Y_train`` once per fold and voxel chunk, then the held-out
  predictions of *every* alpha from one stacked float32 GEMM
  ``M @ B`` with ``M = [X_val V diag(s / (s² + α))]_α`` of shape
  ``(n_alphas * n_val, r)``; the squared error is reduced on the chunk, so
  nothing of shape ``(n_alphas, n_val, n_voxels)`` is ever held;
* the refit computes ``Uᵀ Y`` once and scales each voxel's column by the filter
  factors of its own alpha, then one GEMM ``V @ B`` gives all weights.

Alpha selection follows himalaya's ``RidgeCV``: the score of a fold is the
negative mean squared error on its validation samples (``l2_neg_loss``), the
fold scores are averaged in float64, ``1e-10 * log(alpha)`` is added so that
ties go to the larger alpha, and the first maximum wins. The float32 products
leave each score uncertain by a few 1e-7 of the voxel's mean square, so the
alphas within that of a voxel's best are re-scored in float64
(:func:`refine_near_ties`): the selection is then the one of himalaya's
float64 fit. With ``fit_intercept`` each voxel chunk is centred (in float64)
before any float32 product, so raw-scale data (BOLD around 1000) loses no
precision to its mean.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Iterator, Sequence

import mmap
import os

import numpy as np
import scipy.linalg

from brainalign._utils.threads import blas_limit
from brainalign.encoding.backend import NumpyBackend, check_backend, get_backend

__all__ = [
    "run_chunk",
    "local_map_chunks",
    "Factors",
    "FoldOperator",
    "decompose_design",
    "prepare_folds",
    "fold_neg_mse",
    "fold_neg_mse_exact",
    "refine_near_ties",
    "NEAR_TIE_RTOL",
    "cv_scores_chunk",
    "select_alphas",
    "refit_chunk",
    "fit_chunk",
    "to_backend",
    "solve_ridge_cv",
    "RidgeCVResult",
]

#: eigenvalues of the Gram matrix below this fraction of the largest are dropped
#: (singular values below 1e-6 of the largest carry no usable signal in float32)
_RANK_RTOL = 1e-12

@dataclass
class Factors:
    """Thin SVD ``Xc = U diag(s) Vᵀ`` of a (centred) design.

    Attributes
    ----------
    Ut : ndarray of shape (r, n_samples), float32
        Left singular vectors, transposed (contiguous for ``Ut @ Y``).
    s : ndarray of shape (r,), float64
        Singular values, decreasing, all > 0.
    V : ndarray of shape (n_features, r), float64
        Right singular vectors.
    x_mean : ndarray of shape (n_features,) or None
        Column means removed before the decomposition (``fit_intercept``).
    U64 : ndarray of shape (n_samples, r), float64, or None
        Left singular vectors unrounded (kept by the fold operators, dropped
        for the whole-data decomposition).
    """

    Ut: np.ndarray
    s: np.ndarray
    V: np.ndarray
    x_mean: np.ndarray | None
    U64: np.ndarray | None = field(default=None, repr=False)

    @property
    def rank(self) -> int:
        return int(self.s.size)


@dataclass
class FoldOperator:
    """Everything a fold needs to score all alphas on a voxel chunk.

    Attributes
    ----------
    train, val : ndarray of int
        Sample indices of the fold.
    Ut : ndarray of shape (r, n_train), float32
    M : ndarray of shape (n_alphas * n_val, r) or (q * n_val, r), float32
        Stacked validation operators ``X_val V diag(s / (s² + α))``, or, when
        ``W`` is set, the ``q`` basis operators ``X_val V diag(h_j)``.
    n_alphas : int
    W : ndarray of shape (n_alphas, q), float32, or None
        Low-rank mixing: the filter factors of alpha ``a`` are
        ``Σ_j W[a, j] h_j`` (see :func:`lowrank_filters`).
    Ut64 : ndarray of shape (r, n_train), float64, or None
        ``Ut`` unrounded, for :func:`fold_neg_mse_exact`.
    A64 : ndarray of shape (n_val, r), float64, or None
        ``X_val V`` (centred with the training means when ``fit_intercept``).
    d64 : ndarray of shape (n_alphas, r), float64, or None
        Filter factors ``s / (s² + α)`` of every alpha.
    """

    train: np.ndarray
    val: np.ndarray
    Ut: np.ndarray
    M: np.ndarray
    n_alphas: int
    contiguous_train: slice | None = field(default=None)
    contiguous_val: slice | None = field(default=None)
    W: np.ndarray | None = field(default=None)
    Ut64: np.ndarray | None = field(default=None)
    A64: np.ndarray | None = field(default=None)
    d64: np.ndarray | None = field(default=None)


def _as_slice(idx: np.ndarray) -> slice | None:
    """A slice equal to ``idx`` when the indices are consecutive, else None."""
    if idx.size and idx[-1] - idx[0] + 1 == idx.size and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return None


def decompose_design(X: np.ndarray, fit_intercept: bool = False) -> Factors:
    """Thin SVD of ``X`` from the eigendecomposition of its smaller Gram matrix.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    fit_intercept : bool
        If True, the column means are removed first (and returned).

    Returns
    -------
    Factors
        ``Xc ≈ Ut.T @ diag(s) @ V.T`` with rank ``r <= min(n_samples, n_features)``.

    Notes
    -----
    The Gram matrix is formed and diagonalised in float64 with one LAPACK
    thread (multithreaded LAPACK degrades badly on a shared 2-core machine: an
    SVD measured 30 s with 2 threads vs 0.6-0.9 s with 1). ``XᵀX`` is used when ``n_samples >= n_features``,
    the kernel ``XXᵀ`` otherwise: the two are the same factorisation.
    """
    X64 = np.asarray(X, dtype=np.float64)
    x_mean = None
    if fit_intercept:
        x_mean = X64.mean(0)
        X64 = X64 - x_mean
    n, p = X64.shape
    with blas_limit(1):
        if n >= p:
            w, V = scipy.linalg.eigh(X64.T @ X64, overwrite_a=True, check_finite=False)
        else:
            w, U = scipy.linalg.eigh(X64 @ X64.T, overwrite_a=True, check_finite=False)
    w = w[::-1]
    keep = w > max(w[0], 0.0) * _RANK_RTOL if w.size else np.zeros(0, bool)
    keep &= w > 0
    w = w[keep]
    s = np.sqrt(w)
    if n >= p:
        V = V[:, ::-1][:, keep]
        U = (X64 @ V) / s
    else:
        U = U[:, ::-1][:, keep]
        V = (X64.T @ U) / s
    return Factors(Ut=np.ascontiguousarray(U.T, dtype=np.float32), s=s, V=V, x_mean=x_mean, U64=U)


def filter_factors(s: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """``s / (s² + α)`` for every alpha: array of shape (n_alphas, r), float64."""
    s = np.asarray(s, dtype=np.float64)
    alphas = np.asarray(alphas, dtype=np.float64)
    return s[None, :] / (s[None, :] ** 2 + alphas[:, None])


#: max relative error (per alpha, in max-norm) of the low-rank filter-factor expansion
LOWRANK_RTOL = 1e-7


def lowrank_filters(d: np.ndarray, rtol: float = LOWRANK_RTOL, max_fraction: float = 0.75):
    """Expand every alpha's filter factors in a few shared basis filters.

    The rows ``d_α = s / (s² + α)`` of a log-spaced alpha grid are smooth in
    ``α`` and their matrix has rapidly decaying singular values (about one
    decade per basis vector for a 3-decade grid): ``q`` basis filters ``h_j``
    reproduce all rows to float32 accuracy with ``q`` around half the number
    of alphas. The all-alpha validation GEMM then needs ``q`` operators instead
    of ``n_alphas``, and each alpha's prediction is a mix of ``q`` partial
    predictions (a GEMM with inner dimension ``q``).

    Rows are normalised before the SVD so the tolerance is relative to each
    alpha's own filter (no alpha is approximated worse because its filter is
    small), and the mixing terms stay of the size of the result.

    Parameters
    ----------
    d : ndarray of shape (n_alphas, r), float64
    rtol : float
        Accepted ``max |d_α - Σ_j W[α, j] h_j| / max |d_α|`` over alphas.
    max_fraction : float
        Use the expansion only if ``q <= max_fraction * n_alphas``.

    Returns
    -------
    (W, H) with W of shape (n_alphas, q) and H of shape (q, r), or None when
    the expansion does not pay off.
    """
    n_alphas = d.shape[0]
    if n_alphas < 4:
        return None
    norms = np.abs(d).max(1)
    Dn = d / norms[:, None]
    U, S, Vt = np.linalg.svd(Dn, full_matrices=False)
    for q in range(1, int(max_fraction * n_alphas) + 1):
        approx = (U[:, :q] * S[:q]) @ Vt[:q]
        if np.abs(approx - Dn).max() <= rtol:
            return (U[:, :q] * S[:q]) * norms[:, None], Vt[:q]
    return None


def prepare_folds(
    X: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    alphas: np.ndarray,
    fit_intercept: bool = False,
    filter_rtol: float | None = None,
) -> list[FoldOperator]:
    """One decomposition per fold and the stacked all-alpha validation operator.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    folds : list of (train, val) index arrays
    alphas : ndarray of shape (n_alphas,)
    fit_intercept : bool
    filter_rtol : float or None
        Tolerance of the low-rank expansion of the filter factors across
        alphas (:func:`lowrank_filters`, opt-in, e.g. ``LOWRANK_RTOL``); None
        or 0 (default) keeps one operator per alpha.

    Returns
    -------
    list of FoldOperator
    """
    X = np.asarray(X)
    alphas = np.asarray(alphas, dtype=np.float64)
    ops = []
    for train, val in folds:
        train = np.asarray(train, dtype=np.intp)
        val = np.asarray(val, dtype=np.intp)
        F = decompose_design(X[train], fit_intercept=fit_intercept)
        Xval = np.asarray(X[val], dtype=np.float64)
        if fit_intercept:
            Xval = Xval - F.x_mean
        A = Xval @ F.V  # (n_val, r)
        d = filter_factors(F.s, alphas)  # (n_alphas, r)
        d64 = d
        W = lowrank_filters(d, filter_rtol) if filter_rtol else None
        if W is not None:
            W, d = W  # d now holds the q basis filters h_j
        M = (A[None, :, :] * d[:, None, :]).reshape(d.shape[0] * len(val), F.rank)
        ops.append(
            FoldOperator(
                train=train,
                val=val,
                Ut=F.Ut,
                M=np.ascontiguousarray(M, dtype=np.float32),
                n_alphas=len(alphas),
                contiguous_train=_as_slice(train),
                contiguous_val=_as_slice(val),
                W=None if W is None else np.ascontiguousarray(W, dtype=np.float32),
                Ut64=np.ascontiguousarray(F.U64.T),
                A64=A,
                d64=d64,
            )
        )
    return ops


_NUMPY = NumpyBackend()


def _rows(Y: Any, idx: Any, sl: slice | None, xp: NumpyBackend = _NUMPY) -> Any:
    return Y[sl] if sl is not None else xp.take_rows(Y, idx)


def to_backend(
    ops: Sequence[FoldOperator], full: Factors | None, V32: np.ndarray | None, xp: NumpyBackend
) -> tuple[list[FoldOperator], Factors | None, Any]:
    """The fold operators and the full decomposition with their arrays on ``xp`` (once per fit, not per chunk).

    Parameters
    ----------
    ops : list of FoldOperator
        From :func:`prepare_folds` (numpy arrays).
    full : Factors or None
    V32 : ndarray of shape (n_features, r), float32, or None
    xp : backend from :func:`brainalign.encoding.backend.get_backend`

    Returns
    -------
    (ops, full, V32) on the backend; the numpy backend returns its inputs.
    """
    if xp.name == "numpy":
        return list(ops), full, V32
    # only the float32 operators move; the sample indices and the float64 parts of the near-tie re-scoring
    # (Ut64, A64, d64) stay numpy on the host (xp.take_rows converts the indices)
    ops = [replace(op, Ut=xp.asarray(op.Ut), M=xp.asarray(op.M), W=None if op.W is None else xp.asarray(op.W))
           for op in ops]
    if full is not None:
        full = replace(full, Ut=xp.asarray(full.Ut), s=xp.asarray(full.s, xp.float64), V=None,
                       x_mean=None if full.x_mean is None else xp.asarray(full.x_mean, xp.float64))
    return ops, full, None if V32 is None else xp.asarray(V32)


def fold_neg_mse(
    op: FoldOperator, Y_chunk: Any, fit_intercept: bool = False, xp: NumpyBackend = _NUMPY
) -> Any:
    """Negative validation MSE of every alpha for one fold and one voxel chunk.

    Parameters
    ----------
    op : FoldOperator
        On the backend ``xp`` (:func:`to_backend`).
    Y_chunk : array of shape (n_samples, n_chunk), float32, on ``xp``
        All samples (training and validation) of the chunk's voxels.
    fit_intercept : bool
        If True, the training mean of each voxel is the intercept.
    xp : backend, optional
        numpy (default) or torch (:mod:`brainalign.encoding.backend`).

    Returns
    -------
    array of shape (n_alphas, n_chunk), float64, on ``xp``
        ``-mean((y_val - ŷ_val(α))²)`` (himalaya's ``l2_neg_loss``).
    """
    Ytr = _rows(Y_chunk, op.train, op.contiguous_train, xp)
    Yval = _rows(Y_chunk, op.val, op.contiguous_val, xp)
    if fit_intercept:
        # U is orthogonal to the constant vector (X was centred), so Uᵀ Y_train
        # needs no centring; only the validation target moves by the mean.
        Yval = Yval - xp.astype(xp.mean0(Ytr, xp.float64), xp.float32)
    # Voxel-major products (c, ...) so that the squared error is reduced along
    # contiguous memory: numpy's pairwise float32 summation is both fast and
    # accurate there (relative error ~1e-7 where a strided float32 reduction
    # loses ~1e-6). BLAS reads the transposed views without copies.
    BT = Ytr.T @ op.Ut.T  # (c, r)
    n_val = op.val.shape[0]
    YvalT = xp.contiguous(Yval.T)  # (c, n_val): broadcasting a strided view is ~10x slower
    if op.W is None:
        PT = BT @ op.M.T  # (c, n_alphas * n_val)
        PT = PT.reshape(-1, op.n_alphas, n_val)
        PT -= YvalT[:, None, :]
        PT *= PT  # squared in place (the same bits as np.square)
        err = xp.sum(PT, 2).T  # (n_alphas, c)
    else:
        q = op.W.shape[1]
        c = BT.shape[0]
        Q = xp.empty((q, c, n_val), xp.float32)
        for j in range(q):  # partial predictions of the q basis filters
            xp.matmul(BT, op.M[j * n_val:(j + 1) * n_val].T, out=Q[j])
        P = (op.W @ Q.reshape(q, c * n_val)).reshape(op.n_alphas, c, n_val)
        del Q
        P -= YvalT[None]
        P *= P
        err = xp.sum(P, 2)  # (n_alphas, c)
    return -xp.astype(err, xp.float64) / n_val


def cv_scores_chunk(
    ops: Sequence[FoldOperator], Y_chunk: Any, fit_intercept: bool = False, xp: NumpyBackend = _NUMPY
) -> np.ndarray:
    """Per-fold scores of every alpha: numpy array of shape (n_folds, n_alphas, n_chunk), float64.

    ``ops`` and ``Y_chunk`` live on the backend ``xp``; the scores come back to host memory.
    """
    return np.stack([xp.to_numpy(fold_neg_mse(op, Y_chunk, fit_intercept, xp)) for op in ops])


#: CV scores computed with float32 products are trusted to this fraction of the
#: voxel's mean square (measured ≤ 2.3e-7 of it on random designs, n 120-600, p 10-300);
#: alphas closer than twice this to the best are re-scored in float64
NEAR_TIE_RTOL = 2e-6


def fold_neg_mse_exact(
    op: FoldOperator, Y_chunk: np.ndarray, alpha_index: np.ndarray, voxel_index: np.ndarray,
    fit_intercept: bool = False,
) -> np.ndarray:
    """:func:`fold_neg_mse` in float64 throughout, for a few (alpha, voxel) pairs.

    Parameters
    ----------
    op : FoldOperator
        With ``Ut64``, ``A64`` and ``d64`` (as :func:`prepare_folds` makes them).
    Y_chunk : ndarray of shape (n_samples, n_chunk)
        Cast to float64.
    alpha_index, voxel_index : ndarray of shape (n_pairs,), int
        The pairs to score (indices into the alphas and the chunk's columns).
    fit_intercept : bool

    Returns
    -------
    ndarray of shape (n_pairs,), float64
    """
    cols, inv = np.unique(voxel_index, return_inverse=True)
    Y = np.asarray(Y_chunk[:, cols], dtype=np.float64)
    Ytr, Yval = Y[op.train], Y[op.val]
    if fit_intercept:
        mean = Ytr.mean(0)
        Ytr, Yval = Ytr - mean, Yval - mean
    B = op.Ut64 @ Ytr  # (r, c)
    P = (op.d64[alpha_index] * B.T[inv]) @ op.A64.T  # (n_pairs, n_val)
    return -((Yval.T[inv] - P) ** 2).sum(1) / op.val.size


def refine_near_ties(
    ops: Sequence[FoldOperator],
    Y_chunk: np.ndarray,
    mean_scores: np.ndarray,
    alphas: np.ndarray,
    fit_intercept: bool = False,
    rtol: float | None = None,
    mean_square: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-score in float64 the alphas that are within float32 rounding of a voxel's best.

    The float32 products leave each mean score uncertain by a few 1e-7 of the
    voxel's mean square; two alphas closer than that (a fine grid, a flat
    optimum) can swap (about 1 voxel in 2000 on a fine grid). The alphas within
    ``2 * rtol`` of a voxel's best are re-scored in float64
    (:func:`fold_neg_mse_exact`; a few voxels in 1000 on a coarse grid, up to
    half of them on a 300-alpha grid, at 3.5-7 % of the float32 scoring's time,
    benchmarks/bench_near_ties.py), so the selected alpha is the one
    himalaya's float64 fit selects.

    Parameters
    ----------
    ops : sequence of FoldOperator
    Y_chunk : ndarray of shape (n_samples, n_chunk)
        The voxels as given (not centred).
    mean_scores : ndarray of shape (n_alphas, n_chunk), float64
        Fold-averaged scores from the float32 products; NaN columns are skipped.
    alphas : ndarray of shape (n_alphas,)
    fit_intercept : bool
    rtol : float or None
        Near-tie width, as a fraction of each voxel's mean square (None:
        :data:`NEAR_TIE_RTOL`; a negative value turns the refinement off).
    mean_square : ndarray of shape (n_chunk,), float64, optional
        Each voxel's variance (``fit_intercept``) or mean square, if the
        caller has it already (:func:`fit_chunk` computes it on the backend).

    Returns
    -------
    mean_scores : ndarray of shape (n_alphas, n_chunk), float64
        With the re-scored entries replaced.
    refined : ndarray of shape (n_chunk,), bool
        The re-scored voxels.
    """
    n_alphas, c = mean_scores.shape
    rtol = NEAR_TIE_RTOL if rtol is None else rtol
    refined = np.zeros(c, dtype=bool)
    if n_alphas < 2 or not all(op.Ut64 is not None for op in ops):
        return mean_scores, refined
    s = mean_scores + (np.log(np.asarray(alphas, dtype=np.float64)) * 1e-10)[:, None]
    top2 = -np.partition(-np.nan_to_num(s, nan=-np.inf), 1, axis=0)[:2]
    Y = np.asarray(Y_chunk)
    if mean_square is not None:
        ms = np.asarray(mean_square, dtype=np.float64)
    else:
        ms = Y.var(0, dtype=np.float64) if fit_intercept else np.square(Y, dtype=np.float64).mean(0)
    with np.errstate(invalid="ignore"):  # -inf - -inf where a voxel is excluded
        refined = np.isfinite(top2[0]) & (top2[0] - top2[1] <= 2 * rtol * ms)
    if refined.any():
        # only the alphas that could be the best are re-scored; the others stay below them
        a_idx, v_idx = np.nonzero((s >= top2[0] - 2 * rtol * ms) & refined)
        exact = np.mean([fold_neg_mse_exact(op, Y, a_idx, v_idx, fit_intercept) for op in ops], axis=0)
        mean_scores = mean_scores.copy()
        mean_scores[a_idx, v_idx] = exact
    return mean_scores, refined


def select_alphas(
    mean_scores: np.ndarray, alphas: np.ndarray, local_alpha: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the best alpha per voxel (or one for all) from fold-averaged scores.

    Parameters
    ----------
    mean_scores : ndarray of shape (n_alphas, n_voxels), float64
        CV scores averaged over folds.
    alphas : ndarray of shape (n_alphas,)
    local_alpha : bool
        Per-voxel alphas if True, else the alpha with the best score averaged
        over voxels.

    Returns
    -------
    best_index : ndarray of shape (n_voxels,), int
    best_score : ndarray of shape (n_voxels,), float64
        The selected mean score, including himalaya's ``1e-10 * log(alpha)``
        tie-break slope.
    """
    s = mean_scores + (np.log(np.asarray(alphas, dtype=np.float64)) * 1e-10)[:, None]
    if local_alpha:
        idx = np.argmax(s, axis=0)
    else:
        idx = np.full(s.shape[1], np.argmax(np.nanmean(s, axis=1)), dtype=np.intp)
    best = s[idx, np.arange(s.shape[1])]
    return idx, best


def refit_chunk(
    F: Factors, Y_chunk: Any, voxel_alphas: np.ndarray, V32: Any = None, xp: NumpyBackend = _NUMPY
) -> tuple[Any, Any]:
    """Ridge weights of a voxel chunk, each voxel with its own alpha.

    Parameters
    ----------
    F : Factors
        Decomposition of the whole training design (on ``xp``, :func:`to_backend`).
    Y_chunk : array of shape (n_samples, n_chunk), float32, on ``xp``
    voxel_alphas : ndarray of shape (n_chunk,)
    V32 : array of shape (n_features, r), float32, on ``xp``, optional
        ``F.V`` cast once by the caller (required for a torch backend).
    xp : backend, optional
        numpy (default) or torch (:mod:`brainalign.encoding.backend`).

    Returns
    -------
    coef : array of shape (n_features, n_chunk), float32, on ``xp``
    intercept : array of shape (n_chunk,), float32, on ``xp``, or None
    """
    B = F.Ut @ Y_chunk  # (r, c)
    d = F.s[:, None] / (F.s[:, None] ** 2 + xp.asarray(voxel_alphas, xp.float64)[None, :])
    B *= xp.astype(d, xp.float32)
    coef = (F.V.astype(np.float32) if V32 is None else V32) @ B
    intercept = None
    if F.x_mean is not None:
        y_mean = xp.mean0(Y_chunk, xp.float64)
        intercept = xp.astype(y_mean - F.x_mean @ xp.astype(coef, xp.float64), xp.float32)
    return coef, intercept


@dataclass
class ChunkResult:
    """What one voxel chunk contributes to the fit."""

    start: int
    stop: int
    mean_scores: np.ndarray  # (n_alphas, c) float64, NaN for excluded voxels
    valid: np.ndarray  # (c,) bool, False for constant voxels
    best_index: np.ndarray | None = None  # (c,) int
    coef: np.ndarray | None = None  # (p, c) float32
    intercept: np.ndarray | None = None  # (c,) float32


def _pread_memmap_columns(Y: np.memmap, start: int, stop: int) -> np.ndarray | None:
    """Columns ``start:stop`` of a 2-D ``np.memmap`` read with ``pread`` from its file.

    Touching a column chunk of a row-major mapping maps pages all over the file
    (with large page-cache folios, a 4096-column slice of a 200k-column file
    maps nearly all of it), so the resident set would grow to the file size.
    Reading through the file descriptor keeps the data in the page cache only.
    Returns None when the layout is not one this handles (the caller then
    reads through the mapping).
    """
    orig = Y
    while isinstance(orig, np.ndarray) and not isinstance(getattr(orig, "base", None), mmap.mmap):
        orig = orig.base
    filename = getattr(orig, "filename", None)
    if not isinstance(orig, np.memmap) or filename is None or Y.ndim != 2:
        return None
    item = Y.dtype.itemsize
    base_off = int(orig.offset) + (Y.ctypes.data - orig.ctypes.data)
    n = Y.shape[0]
    width = stop - start
    out = np.empty((n, width), dtype=Y.dtype)
    s0, s1 = Y.strides
    fd = os.open(filename, os.O_RDONLY)
    try:
        if s1 == item:  # row-major: one read per row
            for i in range(n):
                buf = memoryview(out[i]).cast("B")
                if os.preadv(fd, [buf], base_off + i * s0 + start * s1) != buf.nbytes:
                    return None
        elif s0 == item:  # column-major: one read per column
            colbuf = np.empty(n, dtype=Y.dtype)
            for j in range(width):
                buf = memoryview(colbuf).cast("B")
                if os.preadv(fd, [buf], base_off + (start + j) * s1) != buf.nbytes:
                    return None
                out[:, j] = colbuf
        else:
            return None
    finally:
        os.close(fd)
    return out


def load_chunk(Y: Any, start: int, stop: int) -> np.ndarray:
    """Columns ``start:stop`` of a 2-D array-like (numpy, memmap, h5py, zarr) as float32."""
    if isinstance(Y, np.memmap):
        out = _pread_memmap_columns(Y, start, stop)
        if out is not None:
            return np.ascontiguousarray(out, dtype=np.float32)
    return np.ascontiguousarray(np.asarray(Y[:, start:stop]), dtype=np.float32)


def check_chunk(Yc: Any, start: int, xp: NumpyBackend = _NUMPY) -> np.ndarray:
    """Raise on NaN/inf; return the mask of non-constant voxels (numpy bool, shape (n_chunk,)).

    ``Yc`` lives on the backend ``xp`` (the passes over the chunk run there)."""
    finite = xp.to_numpy(xp.all_finite0(Yc))
    if not finite.all():
        bad = start + int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"Y contains NaN or inf (first in voxel {bad}); remove or impute those voxels "
            "(e.g. np.nan_to_num or a brain mask) before fitting."
        )
    return xp.to_numpy(xp.max0(Yc) > xp.min0(Yc))


def fit_chunk(
    Yc: np.ndarray,
    start: int,
    ops: Sequence[FoldOperator],
    full: Factors | None,
    alphas: np.ndarray,
    fit_intercept: bool,
    best_index: np.ndarray | None = None,
    V32: Any = None,
    xp: NumpyBackend = _NUMPY,
) -> ChunkResult:
    """Cross-validate (and, when possible, refit) one voxel chunk.

    If ``best_index`` is given, the CV step is skipped and only the refit runs
    with those alpha indices. If ``full`` is None, only CV scores are returned
    (the caller selects a shared alpha first, ``local_alpha=False``).

    ``Yc`` is a numpy array in host memory; ``ops``, ``full`` and ``V32`` live
    on the backend ``xp`` (:func:`to_backend`). The (centred) chunk is copied
    to the backend once, and the result is numpy again. The float64 re-scoring
    of near ties (:func:`refine_near_ties`) runs in numpy on the host for every
    backend, with the operators' float64 parts, which stay there.
    """
    stop = start + Yc.shape[1]
    # every pass over the chunk runs on the backend: on a GPU, numpy passes over the chunk would cost more host
    # time per voxel than the GPU's products (the chunk is copied there once, for the CV and the refit)
    Yd = xp.asarray(Yc)
    valid = check_chunk(Yd, start, xp)
    n_alphas = len(alphas)
    # each voxel's variance (fit_intercept) or mean square sets the width of the near-tie test
    # (refine_near_ties); computed here in float64 with the same bits as np.var / np.square(...).mean
    y_mean = mean_square = None
    if fit_intercept:
        # centre before any float32 product, so that its rounding is relative
        # to the voxel's spread and not to its mean (raw BOLD is ~1000 ± 20)
        m = xp.mean0(Yd, xp.float64)
        D = Yd - m  # float64
        Yd = xp.astype(D, xp.float32)
        y_mean = xp.to_numpy(m)
    elif best_index is None:
        D = xp.astype(Yd, xp.float64)
    if best_index is None:
        D *= D
        mean_square = xp.to_numpy(xp.mean0(D, xp.float64))
    D = None
    if best_index is None:
        scores = cv_scores_chunk(ops, Yd, fit_intercept, xp).mean(0)
        scores[:, ~valid] = np.nan
        scores, _ = refine_near_ties(ops, Yc, scores, alphas, fit_intercept, mean_square=mean_square)
        res = ChunkResult(start, stop, scores, valid)
        if full is None:
            return res
        idx, _ = select_alphas(np.where(valid, scores, 0.0), alphas, True)
    else:
        res = ChunkResult(start, stop, np.full((n_alphas, Yc.shape[1]), np.nan), valid)
        idx = np.asarray(best_index)
    res.best_index = idx
    coef, intercept = refit_chunk(full, Yd, np.asarray(alphas, dtype=np.float64)[idx], V32, xp)
    coef = xp.to_numpy(coef)
    intercept = None if intercept is None else xp.to_numpy(intercept)
    coef[:, ~valid] = 0.0
    if intercept is not None:
        # a constant voxel keeps its constant as intercept (coef 0)
        intercept = np.where(valid, intercept + y_mean, y_mean).astype(np.float32)
    res.coef, res.intercept = coef, intercept
    return res

@lru_cache(maxsize=None)
def _backend(name: str) -> NumpyBackend:
    return get_backend(name)


def run_chunk(Yc: np.ndarray, start: int, shared: dict) -> ChunkResult:
    """One chunk, under the fit's BLAS thread limit whatever process runs it (a dask worker starts with its
    own thread settings; the limit is what keeps its results equal to the local ones bit for bit).

    On a torch backend (``shared["backend"]``), the fold operators are copied to the device at the first chunk
    and kept in ``shared`` (this process's copy of it) for the next ones."""
    best = shared.get("best_index")
    if best is not None and np.ndim(best) == 0:
        best = np.full(Yc.shape[1], int(best), dtype=np.intp)
    xp = _backend(shared.get("backend", "numpy"))
    with xp.threads(int(shared.get("blas_threads", 1))):
        key = ("on_backend", xp.name)
        if key not in shared:
            shared[key] = to_backend(shared["ops"], shared["full"], shared.get("V32"), xp)
        ops, full, V32 = shared[key]
        return fit_chunk(Yc, start, ops, full, shared["alphas"], shared["fit_intercept"],
                         best_index=best, V32=V32, xp=xp)


def local_map_chunks(Y: Any, bounds: list[tuple[int, int]], shared: dict) -> Iterator[ChunkResult]:
    """Compute the chunks one after the other in this process (reading Y lazily)."""
    for start, stop in bounds:
        yield run_chunk(load_chunk(Y, start, stop), start, shared)


@dataclass
class RidgeCVResult:
    """Output of :func:`solve_ridge_cv`.

    Attributes
    ----------
    best_index : ndarray of shape (n_voxels,), int (-1 for excluded voxels)
    best_alphas : ndarray of shape (n_voxels,), float64 (NaN for excluded voxels)
    coef : ndarray of shape (n_features, n_voxels), float32 (0 for excluded voxels)
    intercept : ndarray of shape (n_voxels,), float32, or None
    cv_scores : ndarray of shape (n_voxels,), float64
        Mean CV score of the selected alpha (with the tie-break slope, as himalaya).
    cv_scores_all : ndarray of shape (n_alphas, n_voxels), float64
        Mean CV score of every alpha (without the slope).
    valid : ndarray of shape (n_voxels,), bool
        False for voxels that are constant over the training samples.
    """

    best_index: np.ndarray
    best_alphas: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray | None
    cv_scores: np.ndarray
    cv_scores_all: np.ndarray
    valid: np.ndarray


def chunk_bounds(n_voxels: int, chunk_voxels: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_voxels)`` in chunks."""
    return [(a, min(a + chunk_voxels, n_voxels)) for a in range(0, n_voxels, chunk_voxels)]


def solve_ridge_cv(
    X: np.ndarray,
    Y: Any,
    alphas: np.ndarray,
    folds: Sequence[tuple[np.ndarray, np.ndarray]],
    fit_intercept: bool = False,
    local_alpha: bool = True,
    chunk_voxels: int = 2048,
    map_chunks: Callable | None = None,
    filter_rtol: float | None = None,
    blas_threads: int = 1,
    backend: str = "numpy",
) -> RidgeCVResult:
    """Ridge regression with a per-voxel (or shared) alpha chosen by cross-validation.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : array-like of shape (n_samples, n_voxels)
        numpy array, ``np.memmap``, h5py or zarr dataset; read ``chunk_voxels``
        columns at a time.
    alphas : ndarray of shape (n_alphas,), all > 0
    folds : list of (train, val) index arrays
    fit_intercept : bool
    local_alpha : bool
    chunk_voxels : int
    map_chunks : callable, optional
        ``map_chunks(Y, bounds, shared) -> iterable of ChunkResult`` in the
        order of ``bounds``; the local executor when None (see
        :mod:`brainalign.encoding.executor`).
    filter_rtol : float or None
        Tolerance of the low-rank expansion of the filter factors across
        alphas (:func:`lowrank_filters`); None or 0 (default) evaluates every
        alpha with its own operator. Opt-in: on the benchmark case the
        expansion needed q = 14-15 of 20 alphas at ``LOWRANK_RTOL`` and was not
        faster on this machine (benchmarks/README.md).
    blas_threads : int
        BLAS threads of each chunk's products, wherever ``map_chunks`` runs
        them (the executors apply it, so local and dask results are equal).
    backend : {"numpy", "torch", "torch_cuda"}
        Where the voxel-sized products run (:mod:`brainalign.encoding.backend`):
        numpy on the CPU, torch on the CPU, or torch on the CUDA GPU, chunk
        by chunk, with ``Y`` and the results in host memory. All give the same
        alphas (up to float32 ties) and scores within float32 rounding.

    Returns
    -------
    RidgeCVResult
    """
    if map_chunks is None:
        map_chunks = local_map_chunks
    check_backend(backend)
    alphas = np.asarray(alphas, dtype=np.float64)
    X32 = np.asarray(X, dtype=np.float32)
    n_samples, n_features = X32.shape
    n_voxels = Y.shape[1]
    ops = prepare_folds(X32, folds, alphas, fit_intercept, filter_rtol)
    full = decompose_design(X32, fit_intercept)
    full.U64 = None  # only the fold operators need it
    V32 = np.ascontiguousarray(full.V, dtype=np.float32)
    bounds = chunk_bounds(n_voxels, chunk_voxels)

    coef = np.zeros((n_features, n_voxels), dtype=np.float32)
    intercept = np.zeros(n_voxels, dtype=np.float32) if fit_intercept else None
    scores_all = np.full((len(alphas), n_voxels), np.nan)
    best_index = np.full(n_voxels, -1, dtype=np.intp)
    valid = np.zeros(n_voxels, dtype=bool)

    shared = dict(ops=ops, full=full if local_alpha else None, alphas=alphas,
                  fit_intercept=fit_intercept, V32=V32, blas_threads=blas_threads, backend=backend)
    for res in map_chunks(Y, bounds, shared):
        sl = slice(res.start, res.stop)
        scores_all[:, sl] = res.mean_scores
        valid[sl] = res.valid
        if res.coef is not None:
            coef[:, sl] = res.coef
            best_index[sl] = np.where(res.valid, res.best_index, -1)
            if intercept is not None:
                intercept[sl] = res.intercept

    if not local_alpha:
        idx, _ = select_alphas(scores_all[:, valid], alphas, local_alpha=False)
        shared_idx = int(idx[0]) if idx.size else len(alphas) - 1
        best_index[:] = np.where(valid, shared_idx, -1)
        shared = dict(ops=ops, full=full, alphas=alphas, fit_intercept=fit_intercept, V32=V32,
                      best_index=shared_idx, blas_threads=blas_threads, backend=backend)
        for res in map_chunks(Y, bounds, shared):
            sl = slice(res.start, res.stop)
            coef[:, sl] = res.coef
            if intercept is not None:
                intercept[sl] = res.intercept

    cv_scores = np.full(n_voxels, np.nan)
    if valid.any():
        s = scores_all[:, valid] + (np.log(alphas) * 1e-10)[:, None]
        cv_scores[valid] = s[best_index[valid], np.arange(s.shape[1])]
    best_alphas = np.where(valid, alphas[np.clip(best_index, 0, None)], np.nan)
    return RidgeCVResult(best_index, best_alphas, coef, intercept, cv_scores, scores_all, valid)
