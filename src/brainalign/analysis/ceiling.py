"""Noise ceilings: how well could any model do, given the noise in the data?

Three estimates, each a plain function over arrays:

* :func:`explainable_variance` — repeat-based, with the bias correction of the
  Gallant-lab voxelwise tutorials (``ev - (1 - ev) / (n_repeats - 1)``);
* :func:`ncsnr` and :func:`ncsnr_noise_ceiling` — NSD's noise-ceiling SNR for
  averaged repeats (Allen et al. 2022);
* :func:`subject_subset_ceiling` — Xiao et al. / Movie10 inter-subject
  predictivity: predict a target subject from k source subjects for growing k
  and extrapolate ``v0 · (1 − exp(−x / τ))`` (:func:`extrapolate_ceiling`).

:func:`normalise_scores` divides a model's score by a ceiling with an explicit
low-ceiling threshold and optional clipping; :func:`normalisation_convention`
states the convention in words for the report.
"""
from __future__ import annotations

import warnings
from itertools import combinations
from math import comb
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from brainalign.encoding.fit_predict import ridge_fit_predict
from brainalign.analysis.metrics import pearson_r

__all__ = [
    "explainable_variance",
    "ncsnr",
    "ncsnr_noise_ceiling",
    "inter_subject_predictivity",
    "extrapolate_ceiling",
    "subject_subset_ceiling",
    "normalise_scores",
    "normalisation_convention",
]


# --------------------------------------------------------------------------- repeat-based
def explainable_variance(repeats, bias_correction: bool = True, zscore: bool = True) -> np.ndarray:
    """Share of variance that repeats of the same stimuli have in common.

    Parameters
    ----------
    repeats : ndarray of shape (n_repeats, n_samples, n_voxels)
        The same test stimuli measured ``n_repeats`` >= 2 times.
    bias_correction : bool
        Subtract the expected contribution of noise to the variance of the
        repeat mean, ``(1 - ev) / (n_repeats - 1)``; unbiased for one trial.
    zscore : bool
        z-score each repeat over time first (set False if already done).

    Returns
    -------
    ev : ndarray of shape (n_voxels,)
        Explainable variance of a single trial (can be slightly negative
        for pure-noise voxels after the correction). R²-scale; its square
        root is the matching correlation ceiling.
    """
    data = np.asarray(repeats, dtype=np.float64)
    if data.ndim != 3 or data.shape[0] < 2 or data.shape[1] < 2:
        raise ValueError(
            f"repeats must be (n_repeats >= 2, n_samples >= 2, n_voxels), got shape {data.shape}; "
            "stack the repeated measurements of the same stimuli along axis 0."
        )
    if zscore:
        sd = data.std(1, keepdims=True)
        sd[sd == 0] = 1.0
        data = (data - data.mean(1, keepdims=True)) / sd
    mean_var = data.var(axis=1, ddof=1).mean(axis=0)
    var_mean = data.mean(axis=0).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ev = var_mean / mean_var
    if bias_correction:
        ev = ev - (1.0 - ev) / (data.shape[0] - 1)
    ev[mean_var == 0] = np.nan
    return ev


def ncsnr(betas, zscore: bool = True) -> np.ndarray:
    """Noise-ceiling signal-to-noise ratio of NSD (Allen et al. 2022).

    With responses z-scored per voxel, the noise SD is the pooled SD across
    repeats of the same stimulus, the signal SD is ``sqrt(max(0, 1 - σ_noise²))``,
    and ``ncsnr = σ_signal / σ_noise``.

    Parameters
    ----------
    betas : ndarray of shape (n_repeats, n_stimuli, n_voxels)
        Single-trial responses; NaN marks a missing repeat (a stimulus needs
        at least 2 finite repeats to enter the noise estimate).
    zscore : bool
        z-score every voxel over all finite trials first (NSD z-scores per
        session; do that upstream and pass ``zscore=False`` to follow it exactly).

    Returns
    -------
    ncsnr : ndarray of shape (n_voxels,)
    """
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 3 or b.shape[0] < 2:
        raise ValueError(
            f"betas must be (n_repeats >= 2, n_stimuli, n_voxels), got shape {b.shape}; "
            "put the repeats of each stimulus along axis 0 (NaN for a missing repeat)."
        )
    if zscore:
        mu = np.nanmean(b, axis=(0, 1), keepdims=True)
        sd = np.nanstd(b, axis=(0, 1), keepdims=True)
        sd[sd == 0] = 1.0
        b = (b - mu) / sd
    n_ok = np.isfinite(b).sum(0)  # (n_stimuli, n_voxels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = np.nanvar(b, axis=0, ddof=1)
    var[n_ok < 2] = np.nan
    noise_var = np.nanmean(var, axis=0)
    signal_var = np.clip(1.0 - noise_var, 0.0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(signal_var) / np.sqrt(noise_var)


def ncsnr_noise_ceiling(ncsnr_values, n_averaged=3) -> np.ndarray:
    """Noise ceiling (fraction of variance, 0–1) for responses averaged over repeats.

    ``NC = ncsnr² / (ncsnr² + mean_i(1 / n_i))`` with ``n_i`` the number of
    repeats averaged for stimulus ``i`` (NSD reports 100 × this, in percent).
    Take the square root for a correlation-scale ceiling.

    Parameters
    ----------
    ncsnr_values : ndarray of shape (n_voxels,)
    n_averaged : int or ndarray of shape (n_stimuli,)
        Repeats averaged per test stimulus.
    """
    s2 = np.asarray(ncsnr_values, dtype=np.float64) ** 2
    n = np.atleast_1d(np.asarray(n_averaged, dtype=np.float64))
    if np.any(n < 1):
        raise ValueError(f"n_averaged must be >= 1 repeat per stimulus, got min {n.min()}.")
    return s2 / (s2 + np.mean(1.0 / n))


# --------------------------------------------------------------------------- subject subsets
def _check_subjects(responses, runs):
    if len(responses) < 2:
        raise ValueError(f"responses holds {len(responses)} subject(s); the ceiling needs at least 2.")
    arrs = [np.asarray(r) for r in responses]
    shape = arrs[0].shape
    for i, a in enumerate(arrs):
        if a.ndim != 2 or a.shape[0] != shape[0]:
            raise ValueError(
                f"responses[{i}] has shape {a.shape} but responses[0] has {shape}; every subject must be "
                "(n_samples, n_voxels_s) on the same stimulus samples."
            )
    runs = np.asarray(runs)
    if runs.shape != (shape[0],):
        raise ValueError(f"runs has shape {runs.shape}; give one run label per sample ({shape[0]}).")
    return arrs, runs


def _source_sets(n_subjects, target, k, max_combinations, rng):
    others = [s for s in range(n_subjects) if s != target]
    total = comb(len(others), k)
    if max_combinations is None or total <= max_combinations:
        return list(combinations(others, k))
    seen = set()
    while len(seen) < max_combinations:
        seen.add(tuple(sorted(rng.choice(others, size=k, replace=False).tolist())))
    return sorted(seen)


def inter_subject_predictivity(
    responses: Sequence[np.ndarray],
    runs,
    test_runs,
    target: int,
    alphas=np.logspace(-1, 5, 13),
    n_folds: int = 3,
    max_combinations: int | None = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """Predict one subject from subsets of the others (Xiao et al.'s ``calculate_ceiling``).

    For every number ``k`` of source subjects and every subset of that size
    (all of them, or ``max_combinations`` drawn with ``seed``), the
    concatenated source responses (z-scored on the training runs) are mapped
    to the target by ridge with alphas chosen by run-wise CV on the training
    runs; the score is Pearson r per target voxel on ``test_runs``.

    Parameters
    ----------
    responses : sequence of ndarray of shape (n_samples, n_voxels_s)
        One array per subject, rows aligned to the same stimuli.
    runs : ndarray of shape (n_samples,)
    test_runs : int or sequence of int
    target : int
        Index of the target subject.
    alphas, n_folds : ridge grid and run-wise CV folds (training runs only)
    max_combinations : int or None
        Cap on subsets per ``k``; None = all.
    seed : int

    Returns
    -------
    DataFrame with one row per (subset, voxel): columns ``target, n_sources,
    subset_size, sources, voxel, r``. ``subset_size = n_sources + 1`` (the
    seeds' x axis).
    """
    from brainalign.encoding.splits import leave_runs_out, train_test_by_runs

    arrs, runs = _check_subjects(responses, runs)
    if not 0 <= target < len(arrs):
        raise ValueError(f"target={target} but there are {len(arrs)} subjects; use 0..{len(arrs) - 1}.")
    train, test = train_test_by_runs(runs, test_runs)
    n_train_runs = np.unique(runs[train]).size
    if n_train_runs < 2:
        raise ValueError(
            f"only {n_train_runs} training run is left; hold out fewer test_runs so alphas can be chosen by CV."
        )
    folds = leave_runs_out(runs[train], min(int(n_folds), n_train_runs))
    rng = np.random.default_rng(seed)
    Y = arrs[target].astype(np.float64)
    y_mu = Y[train].mean(0)
    std = []
    for a in arrs:
        a = a.astype(np.float64)
        sd = a[train].std(0)
        sd[sd == 0] = 1.0
        std.append(((a - a[train].mean(0)) / sd).astype(np.float32))
    rows = []
    for k in range(1, len(arrs)):
        for sources in _source_sets(len(arrs), target, k, max_combinations, rng):
            X = np.hstack([std[s] for s in sources])
            pred, _ = ridge_fit_predict(X[train], (Y - y_mu)[train], X[test], alphas, folds)
            r = pearson_r(Y[test], pred + y_mu)
            rows.append(pd.DataFrame({"target": target, "n_sources": k, "subset_size": k + 1,
                                      "sources": ",".join(map(str, sources)), "voxel": np.arange(r.size), "r": r}))
    return pd.concat(rows, ignore_index=True)


def _saturating(x, v0, tau):
    return v0 * (1.0 - np.exp(-x / tau))


def _bootstrap_draws(x, n_bootstrap, rng):
    idx = []
    while len(idx) < int(n_bootstrap):
        draw = rng.integers(0, x.size, x.size)
        if np.unique(x[draw]).size >= 2:
            idx.append(draw)
    return np.array(idx)


def extrapolate_ceiling(
    x,
    r,
    n_bootstrap: int = 100,
    seed: int = 42,
    method: Literal["profile", "curve_fit"] = "profile",
    tau_bounds: tuple[float, float] = (1e-2, 1e3),
    n_tau: int = 400,
    voxel_batch: int = 512,
) -> pd.DataFrame:
    """Fit ``v0 · (1 − exp(−x / τ))`` per voxel and return the bootstrap median of v0.

    Each bootstrap resample draws the (x, r) points with replacement (a
    resample with a single distinct x is redrawn); v0 is bounded to [0, 1]
    and τ to ``tau_bounds``.

    * ``method="curve_fit"``: ``scipy.optimize.curve_fit`` per voxel and
      resample (``maxfev=6000``), as the studies' code did; a few ms per fit.
    * ``method="profile"`` (default): the same least-squares problem solved
      exactly on a log grid of ``n_tau`` values of τ — for fixed τ the best
      bounded v0 is closed-form — for all voxels and resamples with matrix
      products. It agrees with ``curve_fit`` to the grid resolution and is
      orders of magnitude faster (whole-brain ceilings need it).

    A voxel whose fits all fail falls back to its mean r at the largest x
    (Xiao et al.'s fallback), flagged in ``fallback``.

    Parameters
    ----------
    x : ndarray of shape (n_points,)
        Number of subjects per point (``n_sources`` or ``subset_size``).
    r : ndarray of shape (n_points, n_voxels)
        Score of each point (e.g. one row per source subset).
    n_bootstrap : int
        Resamples (Xiao et al. / Movie10: 100).
    seed : int
        Movie10 used ``np.random.seed(42)``; here a local Generator.
    method : {"profile", "curve_fit"}
    tau_bounds : (low, high)
    n_tau : int
        Grid size of the profile method.
    voxel_batch : int

    Returns
    -------
    DataFrame with one row per voxel: ``voxel, v0, tau, v0_low, v0_high,
    fallback`` (``v0_low``/``v0_high`` = 2.5/97.5 % bootstrap quantiles).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    r = np.asarray(r, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.shape[0] != x.size:
        raise ValueError(f"r has {r.shape[0]} rows but x has {x.size} points; give one r row per x.")
    if np.unique(x).size < 2:
        raise ValueError("x needs at least 2 distinct subject counts to fit a saturating curve.")
    if int(n_bootstrap) < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}.")
    if method not in ("profile", "curve_fit"):
        raise ValueError(f"method={method!r}; use 'profile' or 'curve_fit'.")
    rng = np.random.default_rng(seed)
    draws = _bootstrap_draws(x, n_bootstrap, rng)
    if method == "profile":
        v0s, taus = _profile_fits(x, r, draws, tau_bounds, n_tau, voxel_batch)
    else:
        v0s, taus = _curve_fits(x, r, draws, tau_bounds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = pd.DataFrame({
            "voxel": np.arange(r.shape[1]),
            "v0": np.nanmedian(v0s, axis=0),
            "tau": np.nanmedian(taus, axis=0),
            "v0_low": np.nanquantile(v0s, 0.025, axis=0),
            "v0_high": np.nanquantile(v0s, 0.975, axis=0),
        })
    failed = ~np.isfinite(out["v0"].to_numpy())
    xmax = x == x.max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        last = np.nanmean(r[xmax], axis=0)
    out.loc[failed, "v0"] = last[failed]
    out["fallback"] = failed
    return out


def _curve_fits(x, r, draws, tau_bounds):
    from scipy.optimize import curve_fit

    B, V = len(draws), r.shape[1]
    v0s = np.full((B, V), np.nan)
    taus = np.full((B, V), np.nan)
    bounds = ([0.0, tau_bounds[0]], [1.0, tau_bounds[1]])
    for v in range(V):
        rv = r[:, v]
        ok = np.isfinite(rv)
        for b, draw in enumerate(draws):
            d = draw[ok[draw]]
            if d.size < 2 or np.unique(x[d]).size < 2:
                continue
            p0 = (float(np.clip(np.max(rv[d]), 0.01, 0.99)), float(np.clip(np.median(x), *tau_bounds)))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    popt, _ = curve_fit(_saturating, x[d], rv[d], p0=p0, bounds=bounds, maxfev=6000)
            except (RuntimeError, ValueError):
                continue
            v0s[b, v], taus[b, v] = popt
    return v0s, taus


def _profile_fits(x, r, draws, tau_bounds, n_tau, voxel_batch):
    B, P = draws.shape
    V = r.shape[1]
    W = np.zeros((B, x.size))
    np.add.at(W, (np.repeat(np.arange(B), P), draws.ravel()), 1.0)
    grid = np.geomspace(tau_bounds[0], tau_bounds[1], int(n_tau))
    g = 1.0 - np.exp(-x[None, :] / grid[:, None])  # (T, P)
    Wg = W[:, None, :] * g[None]  # (B, T, P)
    T = grid.size
    Wg2 = Wg.reshape(B * T, P)
    Wgg2 = (Wg * g[None]).reshape(B * T, P)
    v0s = np.full((B, V), np.nan)
    taus = np.full((B, V), np.nan)
    for start in range(0, V, int(voxel_batch)):
        sl = slice(start, min(start + int(voxel_batch), V))
        fin = np.isfinite(r[:, sl])  # a NaN point only drops out of that voxel's fit
        rv = np.where(fin, r[:, sl], 0.0)
        nv = rv.shape[1]
        Wgr = (Wg2 @ rv).reshape(B, T, nv)  # (B, T, v)
        Wrr = W @ rv**2  # (B, v)
        Wgg_v = (Wgg2 @ fin.astype(np.float64)).reshape(B, T, nv)
        with np.errstate(divide="ignore", invalid="ignore"):
            v0 = np.clip(Wgr / Wgg_v, 0.0, 1.0)
        sse = Wrr[:, None, :] - 2 * v0 * Wgr + v0**2 * Wgg_v
        sse = np.where(np.isfinite(sse), sse, np.inf)
        best = np.argmin(sse, axis=1)  # (B, v)
        vb = np.take_along_axis(v0, best[:, None, :], axis=1)[:, 0]
        tb = grid[best].astype(np.float64)
        # a resample needs >= 2 finite points at >= 2 distinct x for the voxel
        xs_ok = np.stack([(W[:, x == xv] @ fin[x == xv]) > 0 for xv in np.unique(x)]).sum(0) >= 2
        vb[~xs_ok] = np.nan
        tb[~xs_ok] = np.nan
        v0s[:, sl], taus[:, sl] = vb, tb
    return v0s, taus


def subject_subset_ceiling(
    responses: Sequence[np.ndarray],
    runs,
    test_runs,
    alphas=np.logspace(-1, 5, 13),
    n_folds: int = 3,
    max_combinations: int | None = 10,
    n_bootstrap: int = 100,
    x: Literal["n_sources", "subset_size"] = "n_sources",
    seed: int = 42,
    method: Literal["profile", "curve_fit"] = "profile",
) -> pd.DataFrame:
    """Extrapolated inter-subject noise ceiling of every subject and voxel.

    Runs :func:`inter_subject_predictivity` with each subject as the target,
    then :func:`extrapolate_ceiling` on the per-subset points.

    Parameters
    ----------
    responses, runs, test_runs, alphas, n_folds, max_combinations :
        See :func:`inter_subject_predictivity`.
    n_bootstrap : int
    method : {"profile", "curve_fit"}
        Fitting method of :func:`extrapolate_ceiling`.
    x : {"n_sources", "subset_size"}
        Abscissa of the fit: number of source subjects (curve through the
        origin; default) or subset size including the target (the studies' axis).
    seed : int

    Returns
    -------
    DataFrame with one row per (subject, voxel): ``subject, voxel, v0, tau,
    v0_low, v0_high, fallback``. ``v0`` is a correlation-scale ceiling.
    """
    if x not in ("n_sources", "subset_size"):
        raise ValueError(f"x={x!r}; use 'n_sources' or 'subset_size'.")
    arrs, runs = _check_subjects(responses, runs)
    tables = []
    for t in range(len(arrs)):
        pts = inter_subject_predictivity(arrs, runs, test_runs, t, alphas, n_folds, max_combinations, seed + t)
        wide = pts.pivot_table(index=["n_sources", "subset_size", "sources"], columns="voxel", values="r")
        xs = wide.index.get_level_values(x).to_numpy()
        fit = extrapolate_ceiling(xs, wide.to_numpy(), n_bootstrap, seed + t, method=method)
        fit.insert(0, "subject", t)
        tables.append(fit)
    return pd.concat(tables, ignore_index=True)


# --------------------------------------------------------------------------- normalisation
def normalise_scores(scores, ceiling, threshold: float = 0.05, clip: bool = False) -> np.ndarray:
    """Ceiling-normalised scores ``score / ceiling``.

    Parameters
    ----------
    scores : ndarray of shape (..., n_voxels)
    ceiling : ndarray broadcastable to ``scores``
        On the same scale as ``scores`` (r with an r-ceiling, R² with an R²-ceiling).
    threshold : float
        Voxels with ``ceiling < threshold`` (or a NaN ceiling) get NaN
        (Xiao et al. / Movie10 used 0.05).
    clip : bool
        Clip the finite ratios to [0, 1] (the Movie10 notebook did).

    Returns
    -------
    ndarray of the broadcast shape
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(ceiling, dtype=np.float64)
    try:
        s, c = np.broadcast_arrays(s, c)
    except ValueError:
        raise ValueError(
            f"scores has shape {s.shape} and ceiling has shape {c.shape}; they must broadcast "
            "(one ceiling per voxel)."
        ) from None
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive number (e.g. 0.05), got {threshold}.")
    out = np.full(s.shape, np.nan)
    ok = np.isfinite(c) & (c >= threshold)
    out[ok] = s[ok] / c[ok]
    if clip:
        out = np.where(np.isfinite(out), np.clip(out, 0.0, 1.0), np.nan)
    return out


def normalisation_convention(threshold: float = 0.05, clip: bool = False, ceiling: str = "ceiling") -> str:
    """One sentence, for the report, that states how scores were normalised."""
    s = f"score / {ceiling} per voxel; voxels with {ceiling} < {threshold:g} are excluded (NaN)"
    return s + ("; ratios clipped to [0, 1]." if clip else "; ratios not clipped.")
