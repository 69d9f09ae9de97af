"""Comparisons between models and instructions.

* :func:`instruction_semantics_coupling` — the video-audio study's analysis: does the
  similarity between instruction texts (embeddings from a text model) predict
  the similarity between the brain-alignment maps those instructions produce?
  RSA-style: correlate the upper triangles of the two instruction ×
  instruction similarity matrices, with a Mantel permutation p-value.
* :func:`match_dimensionality` and :func:`matched_dimensionality_scores` —
  the gameplay study's "matched feature dimensionality": every model's features are
  reduced to the same k by a PCA fitted on the training runs only.
"""
from __future__ import annotations

from typing import Literal, Mapping

import numpy as np
import pandas as pd

__all__ = [
    "similarity_matrix",
    "instruction_semantics_coupling",
    "match_dimensionality",
    "matched_dimensionality_scores",
]


def similarity_matrix(X, metric: Literal["cosine", "pearson"] = "cosine") -> np.ndarray:
    """Similarity between the rows of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_items, n_dims)
        E.g. instruction-text embeddings, or one alignment map per instruction.
        Columns with a non-finite value in any row are dropped first.
    metric : {"cosine", "pearson"}

    Returns
    -------
    S : ndarray of shape (n_items, n_items)
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be (n_items >= 2, n_dims), got shape {X.shape}.")
    X = X[:, np.isfinite(X).all(0)]
    if X.shape[1] < 2:
        raise ValueError("X has fewer than 2 columns that are finite in every row; nothing to compare.")
    if metric == "pearson":
        X = X - X.mean(1, keepdims=True)
    elif metric != "cosine":
        raise ValueError(f"metric={metric!r}; use 'cosine' or 'pearson'.")
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"row(s) {np.flatnonzero(norms == 0).tolist()} of X have zero variance; drop them.")
    Xn = X / norms[:, None]
    return Xn @ Xn.T


def instruction_semantics_coupling(
    text_embeddings,
    alignment_maps,
    text_metric: Literal["cosine", "pearson"] = "cosine",
    map_metric: Literal["cosine", "pearson"] = "pearson",
    method: Literal["pearson", "spearman"] = "spearman",
    n_permutations: int = 10000,
    seed: int = 0,
    labels=None,
) -> dict:
    """Correlation between instruction-text similarity and alignment-map similarity.

    Parameters
    ----------
    text_embeddings : ndarray of shape (n_instructions, n_dims)
        One embedding per instruction text.
    alignment_maps : ndarray of shape (n_instructions, n_voxels)
        The brain-alignment map (e.g. voxelwise r) of the model conditioned on
        each instruction; voxels non-finite in any map are ignored.
    text_metric, map_metric : {"cosine", "pearson"}
        Similarity used within each space.
    method : {"pearson", "spearman"}
        Correlation between the two upper triangles (Oota et al., 2025 report r;
        the construction is not in the text we could read: docs/choices.md).
    n_permutations : int
        Mantel test: instruction labels of one matrix are permuted.
    seed : int
    labels : sequence of str, optional
        Instruction names, kept in the returned matrices' DataFrames.

    Returns
    -------
    dict with ``r``, ``p_value`` (one-sided, coupling > 0, Mantel:
    ``(1 + #{null >= r}) / (1 + n_permutations)``), ``n_instructions``,
    ``n_pairs``, ``method``, ``text_similarity`` and ``map_similarity``
    (DataFrames indexed by instruction).
    """
    from scipy.stats import rankdata

    T = np.asarray(text_embeddings, dtype=np.float64)
    M = np.asarray(alignment_maps, dtype=np.float64)
    if T.ndim != 2 or M.ndim != 2 or T.shape[0] != M.shape[0]:
        raise ValueError(
            f"text_embeddings has shape {T.shape} and alignment_maps has shape {M.shape}; both must be 2-D with one "
            "row per instruction, in the same order."
        )
    n = T.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 instructions for a coupling (got {n}); with fewer there are < 6 pairs.")
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method={method!r}; use 'pearson' or 'spearman'.")
    St = similarity_matrix(T, text_metric)
    Sm = similarity_matrix(M, map_metric)
    iu = np.triu_indices(n, 1)

    def prep(v):
        v = rankdata(v) if method == "spearman" else v
        v = v - v.mean()
        return v / np.linalg.norm(v)

    a = prep(St[iu])
    r = float(a @ prep(Sm[iu]))
    rng = np.random.default_rng(seed)
    null = np.empty(int(n_permutations))
    for k in range(int(n_permutations)):
        p = rng.permutation(n)
        null[k] = a @ prep(Sm[np.ix_(p, p)][iu])
    p_value = (1.0 + np.sum(null >= r - 1e-12)) / (1.0 + n_permutations)
    labels = list(range(n)) if labels is None else list(labels)
    return {"r": r, "p_value": float(p_value), "n_instructions": n, "n_pairs": len(iu[0]), "method": method,
            "text_similarity": pd.DataFrame(St, index=labels, columns=labels),
            "map_similarity": pd.DataFrame(Sm, index=labels, columns=labels)}


def match_dimensionality(spaces: Mapping[str, np.ndarray], train, n_components: int | None = None) -> dict[str, np.ndarray]:
    """Reduce every feature space to the same number of principal components.

    The PCA of each space (centring included) is fitted on the ``train``
    samples only and then applied to all samples, so nothing of the test runs
    leaks into the basis.

    Parameters
    ----------
    spaces : mapping of str -> ndarray of shape (n_samples, n_features_s)
    train : ndarray of int or bool, shape (n_train,) or (n_samples,)
        Training samples.
    n_components : int, optional
        Common k; default the smallest ``min(n_features_s, n_train)``.

    Returns
    -------
    dict of str -> ndarray of shape (n_samples, k), float32
    """
    from sklearn.decomposition import PCA

    if not isinstance(spaces, Mapping) or len(spaces) < 1:
        raise ValueError("spaces must be a non-empty mapping {name: (n_samples, n_features)}.")
    arrs = {k: np.asarray(v, dtype=np.float64) for k, v in spaces.items()}
    n = next(iter(arrs.values())).shape[0]
    for k, v in arrs.items():
        if v.ndim != 2 or v.shape[0] != n:
            raise ValueError(f"spaces[{k!r}] has shape {v.shape}; every space must be (n_samples={n}, n_features).")
    train = np.asarray(train)
    if train.dtype == bool:
        if train.shape != (n,):
            raise ValueError(f"train mask has shape {train.shape}; it must be ({n},).")
        train = np.flatnonzero(train)
    max_k = min(min(v.shape[1] for v in arrs.values()), train.size)
    k = max_k if n_components is None else int(n_components)
    if not 1 <= k <= max_k:
        raise ValueError(
            f"n_components={n_components} but the smallest space / training set allows at most {max_k}; "
            f"choose 1 <= n_components <= {max_k}."
        )
    out = {}
    for name, X in arrs.items():
        if np.all(X[train].std(0) == 0):
            raise ValueError(f"spaces[{name!r}] has zero variance on the training samples; drop it.")
        pca = PCA(n_components=k, svd_solver="full").fit(X[train])
        out[name] = pca.transform(X).astype(np.float32)
    return out


def matched_dimensionality_scores(
    spaces: Mapping[str, np.ndarray],
    Y,
    runs,
    test_runs,
    n_components: int | None = None,
    alphas=np.logspace(-2, 5, 15),
    n_folds: int = 5,
    delays=None,
) -> pd.DataFrame:
    """Held-out encoding scores of several models at matched dimensionality.

    Parameters
    ----------
    spaces : mapping of model name -> ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples, n_voxels)
    runs : ndarray of shape (n_samples,)
    test_runs : int or sequence of int
    n_components : int, optional
        Common k (see :func:`match_dimensionality`).
    alphas, n_folds, delays : as in :func:`brainalign.analysis.partition.variance_partition`

    Returns
    -------
    DataFrame in long form: ``model, voxel, n_components, r, r2``.
    """
    from brainalign.encoding.fit_predict import ridge_fit_predict
    from brainalign.analysis.metrics import pearson_r, r2_score
    from brainalign.encoding.delays import make_delayed
    from brainalign.encoding.splits import leave_runs_out, train_test_by_runs

    Y = np.asarray(Y)
    runs = np.asarray(runs)
    if Y.ndim != 2 or runs.shape != (Y.shape[0],):
        raise ValueError(f"Y has shape {Y.shape} and runs {runs.shape}; need Y (n_samples, n_voxels) and one run per sample.")
    train, test = train_test_by_runs(runs, test_runs)
    n_train_runs = np.unique(runs[train]).size
    if n_train_runs < 2:
        raise ValueError(f"only {n_train_runs} training run is left; hold out fewer test_runs (alphas need run-wise CV).")
    reduced = match_dimensionality(spaces, train, n_components)
    folds = leave_runs_out(runs[train], min(int(n_folds), n_train_runs))
    y_mu = Y[train].mean(0, dtype=np.float64)
    tables = []
    for name, Z in reduced.items():
        Z = (Z - Z[train].mean(0)) / np.where(Z[train].std(0) == 0, 1, Z[train].std(0))
        if delays is not None:
            Z = make_delayed(Z, delays, runs)
        pred, _ = ridge_fit_predict(Z[train], Y[train] - y_mu, Z[test], alphas, folds)
        pred = pred + y_mu
        tables.append(pd.DataFrame({"model": name, "voxel": np.arange(Y.shape[1]), "n_components": reduced[name].shape[1],
                                    "r": pearson_r(Y[test], pred), "r2": r2_score(Y[test], pred)}))
    return pd.concat(tables, ignore_index=True)
