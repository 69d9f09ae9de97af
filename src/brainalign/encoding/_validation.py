"""Input checks shared by the encoding estimators (as ``himalaya.validation`` is for himalaya's).

Every estimator of :mod:`brainalign.encoding` validates its arguments with
these functions, so the same mistake gets the same message whichever
estimator is fitted.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

__all__ = ["check_X", "check_alphas", "check_runs"]


def check_X(X: Any, name: str = "X", keep_float64: bool = False) -> np.ndarray:
    """A design matrix as float32, refused with a message naming ``name`` when unusable.

    The messages for sparse, complex, 1-D and empty input contain the phrases
    of scikit-learn's ``check_array`` ("Sparse data was passed", "Complex data
    not supported", "Reshape your data", "0 feature(s) (shape=...) while a
    minimum of 1 is required"), so code and checks written for scikit-learn
    recognise them; each also says how to fix the input.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Real, finite, with at least one sample and one feature. An object
        array of numbers is converted (as scikit-learn does).
    name : str
        What the messages call the argument (e.g. ``"Xs[1]"``).
    keep_float64 : bool
        Return float64 input as float64 (the estimators' outputs follow it).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32 (or float64, see ``keep_float64``)
        Not copied when already of that dtype.

    Raises
    ------
    TypeError
        Sparse input, or an object array holding something that is not a number.
    ValueError
        Not 2-D, not real numbers, empty, or holding NaN/inf (the message names the first bad row).
    """
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required; use {name}.toarray() "
            "(the ridge solver works on dense float32 arrays)."
        )
    X = np.asarray(X)
    if X.ndim != 2:
        fix = f" Reshape your data with {name}.reshape(-1, 1) for a single feature." if X.ndim == 1 else ""
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}.{fix}")
    if np.iscomplexobj(X):
        raise ValueError(
            f"{name} must hold real numbers, got dtype {X.dtype}. Complex data not supported; "
            f"pass {name}.real or np.abs({name})."
        )
    if X.dtype == object:
        X = X.astype(np.float64)  # numbers stored as objects; TypeError/ValueError from numpy otherwise
    if not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    if X.shape[0] == 0 or X.shape[1] == 0:
        what = "sample" if X.shape[0] == 0 else "feature"
        raise ValueError(
            f"{name} is empty (shape {X.shape}): 0 {what}(s) (shape={X.shape}) while a minimum of 1 is "
            "required; give at least one sample and one feature."
        )
    X = X.astype(np.float64 if keep_float64 and X.dtype == np.float64 else np.float32, copy=False)
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(1))
        raise ValueError(
            f"{name} contains NaN or inf in {rows.size} sample(s) (first: row {rows[0]}); "
            "impute or drop those samples (and the matching rows of Y) before fitting."
        )
    return X


def check_alphas(alphas: Any) -> np.ndarray:
    """Candidate regularisation strengths as a float64 vector, all finite and > 0.

    Parameters
    ----------
    alphas : float or array-like of shape (n_alphas,)

    Returns
    -------
    alphas : ndarray of shape (n_alphas,), float64
    """
    a = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got shape {a.shape}.")
    if not np.isfinite(a).all() or (a <= 0).any():
        raise ValueError(
            f"alphas must be finite and > 0, got {a[~(np.isfinite(a) & (a > 0))][:5].tolist()}; "
            "use e.g. np.logspace(-2, 5, 15)."
        )
    return a


def check_runs(runs: Any, n_samples: int) -> np.ndarray | None:
    """The run label of every sample (None stays None).

    Parameters
    ----------
    runs : array-like of shape (n_samples,) or None
    n_samples : int
        Rows of X.

    Returns
    -------
    runs : ndarray of shape (n_samples,) or None
    """
    if runs is None:
        return None
    runs = np.asarray(runs)
    if runs.shape != (n_samples,):
        raise ValueError(f"runs has shape {runs.shape}; give one run label per sample ({n_samples}).")
    return runs
