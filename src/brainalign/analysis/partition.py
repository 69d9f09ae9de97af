"""Set-theoretic variance partitioning between feature spaces (de Heer et al., 2017; Lescroart et al., 2015).

One encoder per non-empty subset of the spaces (A, B, A∪B; or the seven
subsets of three spaces), same delays and alpha grid, alphas chosen per model
and per voxel by run-wise CV on the training runs only, R² on the held-out
test runs. The parts follow by inclusion–exclusion, e.g. for two spaces

    shared    = R²_A + R²_B − R²_{A∪B}
    unique_A  = R²_{A∪B} − R²_B

and in general the part owned by exactly the spaces in T is
``sum_{W ⊆ T} (−1)^{|T|−|W|} (R²_all − R²_{all∖W})``. Negative parts are
kept: they are what an over-fitted or over-regularised joint model gives.
"""
from __future__ import annotations

from itertools import combinations
from typing import Literal, Mapping

import numpy as np
import pandas as pd

from brainalign.encoding.fit_predict import banded_ridge_fit_predict, ridge_fit_predict
from brainalign.analysis.metrics import pearson_r, r2_score

__all__ = [
    "variance_partition",
    "part_columns",
    "partition_percentages",
    "dominance_analysis",
    "feature_space_vif",
]


def _subset_key(members: tuple[str, ...], names: tuple[str, ...]) -> str:
    if len(members) == len(names):
        return "r2_joint"
    return "r2_" + "_".join(members)


def _part_key(members: tuple[str, ...], names: tuple[str, ...]) -> str:
    if len(members) == 1:
        return f"unique_{members[0]}"
    if len(names) == 2:
        return "shared"
    return "shared_" + "_".join(members)


def part_columns(names) -> list[str]:
    """Column names of the set-theoretic parts for these space names, in a fixed order."""
    names = tuple(names)
    return [_part_key(c, names) for k in range(1, len(names) + 1) for c in combinations(names, k)]


def _check_spaces(spaces, Y, runs, test_runs, n_folds):
    if not isinstance(spaces, Mapping):
        raise ValueError("spaces must be a mapping {name: array of shape (n_samples, n_features)}.")
    names = tuple(spaces)
    if len(names) not in (2, 3):
        raise ValueError(f"spaces has {len(names)} entries ({list(names)}); variance_partition handles 2 or 3 spaces.")
    for nm in names:
        if not isinstance(nm, str) or not nm.isidentifier() or nm == "joint":
            raise ValueError(
                f"space name {nm!r} cannot be a column name; use a Python identifier other than 'joint'."
            )
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"Y must be (n_samples, n_voxels), got shape {Y.shape}.")
    n = Y.shape[0]
    Xs = {}
    for nm in names:
        X = np.asarray(spaces[nm])
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2 or X.shape[0] != n:
            raise ValueError(
                f"spaces[{nm!r}] has shape {X.shape} but Y has {n} samples; every space must be "
                f"(n_samples={n}, n_features)."
            )
        Xs[nm] = X
    runs = np.asarray(runs)
    if runs.shape != (n,):
        raise ValueError(f"runs has shape {runs.shape}; give one run label per sample ({n}).")
    from brainalign.encoding.splits import train_test_by_runs

    train, test = train_test_by_runs(runs, test_runs)
    train_runs = np.unique(runs[train])
    if train_runs.size < 2:
        raise ValueError(
            f"only {train_runs.size} training run ({train_runs.tolist()}) is left after holding out "
            f"test_runs={np.atleast_1d(test_runs).tolist()}; alpha selection needs at least 2 training runs. "
            "Hold out fewer runs."
        )
    if not 2 <= int(n_folds) <= train_runs.size:
        raise ValueError(
            f"n_folds={n_folds} but there are {train_runs.size} training runs; choose 2 <= n_folds <= {train_runs.size}."
        )
    for nm, X in Xs.items():
        if not np.all(np.isfinite(X)):
            raise ValueError(f"spaces[{nm!r}] contains NaN or inf; impute or drop those samples first.")
        if np.all(X[train].std(0) == 0):
            raise ValueError(
                f"spaces[{nm!r}] has zero variance on the training runs; it cannot explain anything. "
                "Check the feature extraction or drop this space."
            )
    return names, Xs, Y, runs, train, test


def variance_partition(
    spaces: Mapping[str, np.ndarray],
    Y,
    runs,
    test_runs,
    alphas=np.logspace(-2, 5, 15),
    n_folds: int = 5,
    delays=None,
    *,
    method: Literal["ridge", "banded"] = "ridge",
    score: Literal["r2", "signed_r2"] = "r2",
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out R² of every subset model and the set-theoretic parts, per voxel.

    Parameters
    ----------
    spaces : mapping of str -> ndarray of shape (n_samples, n_features_s)
        Two or three feature spaces on the same samples; names must be
        identifiers (they become column names).
    Y : ndarray of shape (n_samples, n_voxels)
    runs : ndarray of shape (n_samples,)
        Run label per sample (contiguous runs).
    test_runs : int or sequence of int
        Runs held out for scoring; the others train.
    alphas : array-like
        Ridge penalty grid (shared by all models; chosen per model and voxel).
    n_folds : int
        Run-wise CV folds inside the training runs (2 <= n_folds <= n_train_runs).
    delays : sequence of int, optional
        FIR delays (samples) applied to every space after z-scoring, without
        crossing run boundaries. None = no delays.
    method : {"ridge", "banded"}
        "ridge": each subset model is one ridge on the concatenated spaces (the
        standard scheme). "banded": multi-space models get one penalty per
        space (himalaya ``BandedRidgeCV``), a robustness check against the
        shared-alpha penalty of the joint model.
    score : {"r2", "signed_r2"}
        Held-out coefficient of determination (default), or ``r * |r|`` of
        the Pearson r (the r-based convention; reports should state
        which). The columns keep the ``r2_`` prefix; ``df.attrs["score"]``
        records the choice.
    seed : int
        Random search seed for ``method="banded"``.

    Returns
    -------
    DataFrame with one row per voxel and columns
        ``voxel``; ``r2_<name>`` for each space; for three spaces also
        ``r2_<a>_<b>`` for each pair; ``r2_joint``; the parts
        ``unique_<name>`` and ``shared`` (two spaces) or ``unique_<name>``,
        ``shared_<a>_<b>`` and ``shared_<a>_<b>_<c>`` (three spaces).
        Values are fractions of variance (not percent); negatives are kept.
        ``df.attrs`` holds ``spaces``, ``method``, ``alphas_<model>`` (per-voxel
        chosen alphas) and ``n_test``.
    """
    names, Xs, Y, runs, train, test = _check_spaces(spaces, Y, runs, test_runs, n_folds)
    if method not in ("ridge", "banded"):
        raise ValueError(f"method={method!r}; use 'ridge' or 'banded'.")
    if score not in ("r2", "signed_r2"):
        raise ValueError(f"score={score!r}; use 'r2' or 'signed_r2'.")
    from brainalign.encoding.delays import make_delayed, zscore_with_train
    from brainalign.encoding.splits import leave_runs_out

    prepared = {}
    for nm, X in Xs.items():
        Z = zscore_with_train(X, train)
        if delays is not None:
            Z = make_delayed(Z, delays, runs)
        prepared[nm] = Z.astype(np.float32)
    y_mu = Y[train].mean(0, dtype=np.float64)
    Yc = (Y - y_mu).astype(np.float32)
    folds = leave_runs_out(runs[train], int(n_folds))

    out = {"voxel": np.arange(Y.shape[1])}
    attrs = {"spaces": list(names), "method": method, "score": score, "n_test": int(test.size)}
    r2 = {}
    for k in range(1, len(names) + 1):
        for members in combinations(names, k):
            if method == "banded" and k > 1:
                pred, best = banded_ridge_fit_predict(
                    [prepared[m][train] for m in members], Yc[train],
                    [prepared[m][test] for m in members], alphas, folds, seed=seed,
                )
            else:
                X = np.hstack([prepared[m] for m in members])
                pred, best = ridge_fit_predict(X[train], Yc[train], X[test], alphas, folds)
            key = _subset_key(members, names)
            if score == "r2":
                r2[members] = r2_score(Y[test], pred + y_mu)
            else:
                r = pearson_r(Y[test], pred + y_mu)
                r2[members] = r * np.abs(r)
            attrs["alphas_" + key[3:]] = best
    for nm in names:
        out[f"r2_{nm}"] = r2[(nm,)]
    if len(names) == 3:
        for pair in combinations(names, 2):
            out[_subset_key(pair, names)] = r2[pair]
    out["r2_joint"] = r2[names]
    out.update(_parts_from_subsets(r2, names))
    df = pd.DataFrame(out)
    df.attrs.update(attrs)
    return df


def _parts_from_subsets(r2: Mapping[tuple, np.ndarray], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Möbius inversion of subset R² into the parts owned by exactly each subset."""
    full = r2[names]

    def h(W: tuple[str, ...]):  # variance in the parts contained in W
        rest = tuple(n for n in names if n not in W)
        return full - (r2[rest] if rest else 0.0)

    parts = {}
    for k in range(1, len(names) + 1):
        for T in combinations(names, k):
            val = 0.0
            for j in range(1, k + 1):
                for W in combinations(T, j):
                    val = val + (-1) ** (k - j) * h(W)
            parts[_part_key(T, names)] = val
    return parts


def _mask_dict(masks, n_voxels):
    if masks is None:
        return {"all": np.ones(n_voxels, dtype=bool)}
    out = {}
    for name, m in masks.items():
        m = np.asarray(m)
        if m.dtype != bool:
            m = np.isin(np.arange(n_voxels), m) if m.ndim == 1 and m.size != n_voxels else m.astype(bool)
        if m.shape != (n_voxels,):
            raise ValueError(
                f"masks[{name!r}] has shape {m.shape} but the table has {n_voxels} voxels; "
                "give a boolean mask per voxel or an array of voxel indices."
            )
        out[name] = m
    return out


def partition_percentages(table: pd.DataFrame, masks=None, min_r2_joint: float = 0.0) -> pd.DataFrame:
    """Parts as percentages of the joint R², per ROI, aggregated both ways.

    Parameters
    ----------
    table : DataFrame from :func:`variance_partition`
    masks : mapping of str -> bool ndarray of shape (n_voxels,) (or voxel indices), optional
        ROIs; None = one ROI "all".
    min_r2_joint : float
        Only voxels with ``r2_joint > min_r2_joint`` enter (a ratio to a
        non-positive joint R² is meaningless). Both aggregations use the same voxels.

    Returns
    -------
    DataFrame with columns ``roi, part, aggregation, percent, n_voxels``;
        ``aggregation`` is "mean_of_ratios" (mean over voxels of
        100·part/r2_joint) or "ratio_of_means" (100·mean(part)/mean(r2_joint)).
    """
    if "r2_joint" not in table:
        raise ValueError("table has no 'r2_joint' column; pass the DataFrame returned by variance_partition.")
    parts = [c for c in table.columns if c.startswith("unique_") or c.startswith("shared")]
    masks = _mask_dict(masks, len(table))
    joint = table["r2_joint"].to_numpy(dtype=np.float64)
    rows = []
    for roi, m in masks.items():
        sel = m & np.isfinite(joint) & (joint > min_r2_joint)
        for part in parts:
            val = table[part].to_numpy(dtype=np.float64)[sel]
            j = joint[sel]
            if sel.any():
                mor = 100.0 * np.mean(val / j)
                rom = 100.0 * val.mean() / j.mean()
            else:
                mor = rom = np.nan
            rows.append({"roi": roi, "part": part, "aggregation": "mean_of_ratios", "percent": mor, "n_voxels": int(sel.sum())})
            rows.append({"roi": roi, "part": part, "aggregation": "ratio_of_means", "percent": rom, "n_voxels": int(sel.sum())})
    return pd.DataFrame(rows)


def dominance_analysis(table: pd.DataFrame) -> pd.DataFrame:
    """General dominance of every space, per voxel (Azen & Budescu 2003).

    The general dominance of space i is the mean over subset sizes k of the
    mean increase in R² when i is added to a subset of k other spaces. The
    weights of all spaces sum to ``r2_joint``.

    Parameters
    ----------
    table : DataFrame from :func:`variance_partition` (it holds every subset R²)

    Returns
    -------
    DataFrame with columns ``voxel``, ``dominance_<name>`` per space and
        ``dominant`` (the name of the largest).
    """
    names = tuple(table.attrs.get("spaces", ()))
    if not names:
        names = tuple(c[len("unique_"):] for c in table.columns if c.startswith("unique_"))
    if len(names) < 2:
        raise ValueError("table does not describe 2 or 3 spaces; pass the DataFrame returned by variance_partition.")

    def r2_of(members):
        if not members:
            return 0.0
        return table[_subset_key(tuple(n for n in names if n in members), names)].to_numpy(dtype=np.float64)

    out = {"voxel": table["voxel"].to_numpy() if "voxel" in table else np.arange(len(table))}
    for i in names:
        others = [n for n in names if n != i]
        levels = []
        for k in range(len(others) + 1):
            incs = [r2_of(set(S) | {i}) - r2_of(set(S)) for S in combinations(others, k)]
            levels.append(np.mean(incs, axis=0))
        out[f"dominance_{i}"] = np.mean(levels, axis=0)
    df = pd.DataFrame(out)
    dom = df[[f"dominance_{n}" for n in names]].to_numpy()
    best = np.full(len(df), None, dtype=object)
    ok = np.isfinite(dom).all(1)
    best[ok] = np.asarray(names, dtype=object)[np.argmax(dom[ok], axis=1)]
    df["dominant"] = best
    return df


def feature_space_vif(spaces: Mapping[str, np.ndarray], n_components: int = 10, train=None) -> pd.DataFrame:
    """Variance inflation between feature spaces, after PCA within each space.

    Each space is reduced to its first ``n_components`` principal components
    (fit on ``train`` samples only, then scored on them); every component's
    VIF is ``1 / (1 − R²)`` of its least-squares regression on all other
    components (within a space they are orthogonal, so this measures the
    overlap with the *other* spaces).

    Parameters
    ----------
    spaces : mapping of str -> ndarray of shape (n_samples, n_features_s)
    n_components : int
        Components kept per space (capped at the space's rank).
    train : ndarray of int or bool, optional
        Samples used; default all.

    Returns
    -------
    DataFrame with columns ``space, component, vif``.
    """
    from sklearn.decomposition import PCA

    if not isinstance(spaces, Mapping) or len(spaces) < 2:
        raise ValueError("spaces must be a mapping with at least 2 feature spaces.")
    n = None
    comps, labels = [], []
    for nm, X in spaces.items():
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"spaces[{nm!r}] must be 2-D (n_samples, n_features), got shape {X.shape}.")
        if n is None:
            n = X.shape[0]
        elif X.shape[0] != n:
            raise ValueError(f"spaces[{nm!r}] has {X.shape[0]} samples but another space has {n}; align them first.")
        Xt = X if train is None else X[train]
        if np.all(Xt.std(0) == 0):
            raise ValueError(f"spaces[{nm!r}] has zero variance; drop it before computing VIF.")
        k = int(min(n_components, *Xt.shape))
        Z = PCA(n_components=k).fit_transform(Xt)
        comps.append(Z - Z.mean(0))
        labels += [(nm, c) for c in range(k)]
    Z = np.hstack(comps)
    rows = []
    for j, (nm, c) in enumerate(labels):
        others = np.delete(Z, j, axis=1)
        coef, *_ = np.linalg.lstsq(others, Z[:, j], rcond=None)
        resid = Z[:, j] - others @ coef
        r2 = 1.0 - resid @ resid / (Z[:, j] @ Z[:, j])
        rows.append({"space": nm, "component": c, "vif": 1.0 / (1.0 - r2) if r2 < 1 else np.inf})
    return pd.DataFrame(rows)
