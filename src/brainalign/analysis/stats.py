"""Voxel-wise significance, multiple-comparison control and across-subject tests.

The permutation test never loops over voxels. Permuting the blocks of the
measured test series leaves its mean, variance and norm unchanged, so every
metric offered here (Pearson r, R², cosine) under a permutation is an affine
function of one number per voxel: the cross-product ``sum_t y_true[perm[t]] *
y_pred[t]``. With equal-length blocks that cross-product is a sum of
block-pair cross-products ``C[i, j] = sum_k y_true[block_i + k] * y_pred[block_j + k]``,
so the null of every voxel under a whole batch of permutations is one matrix
product ``Q @ C`` where row ``b`` of ``Q`` marks the block pairs that
permutation ``b`` uses. When blocks are many and short (``C`` would hold more
rows than the data have samples), a gather over permuted samples is used
instead; both give the same numbers.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from brainalign.analysis.metrics import cosine_similarity, pearson_r, r2_score

__all__ = [
    "block_indices",
    "has_exchangeable_blocks",
    "block_permutations",
    "permutation_test",
    "fdr_bh",
    "fwer_max_statistic",
    "bootstrap_ci",
    "paired_statistics",
    "paired_test",
    "mad",
    "sem",
]

Metric = Literal["r", "r2", "cosine"]
_METRICS = {"r": pearson_r, "r2": r2_score, "cosine": cosine_similarity}


# --------------------------------------------------------------------------- inputs
def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.ndim != 2 or y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} and y_pred has shape {y_pred.shape}; "
            "pass two arrays of the same shape (n_samples, n_voxels)."
        )
    return y_true, y_pred


def _check_runs(runs, n_samples: int) -> np.ndarray:
    if runs is None:
        return np.zeros(n_samples, dtype=int)
    runs = np.asarray(runs)
    if runs.shape != (n_samples,):
        raise ValueError(
            f"runs has shape {runs.shape} but the data have {n_samples} samples; "
            "give one run label per test sample (or runs=None for a single run)."
        )
    return runs


def _check_metric(metric: str) -> str:
    if metric not in _METRICS:
        raise ValueError(f"metric={metric!r} is not known; use one of {sorted(_METRICS)}.")
    return metric


# --------------------------------------------------------------------------- blocks
def block_indices(runs, block_length: int) -> list[np.ndarray]:
    """Cut every run into contiguous blocks of ``block_length`` samples.

    Parameters
    ----------
    runs : ndarray of shape (n_samples,)
        Run label of every sample; the samples of a run must be contiguous.
    block_length : int
        Samples per block (>= 1). The last block of a run keeps the remainder
        and may be shorter.

    Returns
    -------
    list of ndarray
        Sample indices of each block, runs in order of appearance.
    """
    runs = np.asarray(runs)
    if int(block_length) != block_length or block_length < 1:
        raise ValueError(f"block_length must be a positive integer, got {block_length!r}.")
    block_length = int(block_length)
    from brainalign.encoding.delays import run_boundaries

    blocks = []
    for idx in run_boundaries(runs):
        blocks.extend(idx[s : s + block_length] for s in range(0, idx.size, block_length))
    return blocks


def _exchange_groups(blocks: list[np.ndarray], runs: np.ndarray) -> list[np.ndarray]:
    """Indices (into ``blocks``) of blocks that may swap: same run, same length."""
    keys: dict[tuple, list[int]] = {}
    for i, b in enumerate(blocks):
        keys.setdefault((runs[b[0]], b.size), []).append(i)
    return [np.asarray(v) for v in keys.values()]


def has_exchangeable_blocks(runs, block_length: int) -> bool:
    """Whether some run has two blocks of ``block_length`` samples that a block permutation may swap (the rule
    :func:`permutation_test` applies; ``validate`` asks it before any compute)."""
    blocks = block_indices(runs, block_length)
    return len(blocks) >= 2 and any(g.size >= 2 for g in _exchange_groups(blocks, np.asarray(runs)))


def block_permutations(runs, block_length: int, n_permutations: int, seed: int | None = 0) -> np.ndarray:
    """Sample permutations that reorder blocks within runs.

    Blocks only move inside their own run, and only onto a block of the same
    length (the shorter remainder block of a run stays where it is), so each
    permutation keeps the within-block autocorrelation and the run structure.
    ``block_length=1`` is an ordinary shuffle within runs.

    Parameters
    ----------
    runs : ndarray of shape (n_samples,)
    block_length : int
    n_permutations : int
    seed : int or None

    Returns
    -------
    perms : ndarray of shape (n_permutations, n_samples), int
        ``y[perms[b]]`` is the ``b``-th permuted series.
    """
    runs = np.asarray(runs)
    blocks = block_indices(runs, block_length)
    groups = _exchange_groups(blocks, runs)
    rng = np.random.default_rng(seed)
    perms = np.empty((int(n_permutations), runs.size), dtype=np.int64)
    for b in range(int(n_permutations)):
        for g in groups:
            src = rng.permutation(g)
            for dst_block, src_block in zip(g, src):
                perms[b, blocks[dst_block]] = blocks[src_block]
    return perms


def _perm_sources(runs, block_length, n_permutations, seed):
    """Block-level permutations: for each permutation, the source block of every block."""
    blocks = block_indices(runs, block_length)
    groups = _exchange_groups(blocks, runs)
    rng = np.random.default_rng(seed)
    src = np.empty((int(n_permutations), len(blocks)), dtype=np.int64)
    for b in range(int(n_permutations)):
        for g in groups:
            src[b, g] = rng.permutation(g)
    return blocks, groups, src


def _expand(blocks, src_row) -> np.ndarray:
    perm = np.empty(sum(b.size for b in blocks), dtype=np.int64)
    for j, i in enumerate(src_row):
        perm[blocks[j]] = blocks[i]
    return perm


# --------------------------------------------------------------------------- permutation test
def _affine_terms(a: np.ndarray, b: np.ndarray, metric: str):
    """Write the metric of a permuted series as an affine function of one cross-product.

    Returns ``(a_used, b_used, offset, gain)``, per voxel, such that the metric
    of ``(a[perm], b)`` equals ``offset + gain * sum_t a_used[perm[t]] * b_used[t]``
    for every permutation ``perm`` (``gain > 0``; inf where a column is constant).
    """
    if metric == "r":
        a_c = a - a.mean(0)
        b_c = b - b.mean(0)
        den = np.sqrt(np.einsum("tv,tv->v", a_c, a_c) * np.einsum("tv,tv->v", b_c, b_c))
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = 1.0 / den
        return a_c, b_c, np.zeros(a.shape[1]), gain
    if metric == "cosine":
        den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = 1.0 / den
        return a, b, np.zeros(a.shape[1]), gain
    # r2 = 1 - (sum a^2 + sum b^2 - 2 cross) / ss_tot
    ss_tot = ((a - a.mean(0)) ** 2).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = 1.0 - ((a**2).sum(0) + (b**2).sum(0)) / ss_tot
        gain = 2.0 / ss_tot
    return a, b, offset, gain


def permutation_test(
    y_true,
    y_pred,
    runs=None,
    block_length: int = 10,
    n_permutations: int = 1000,
    metric: Metric = "r",
    seed: int | None = 0,
    *,
    return_fwer: bool = False,
    voxel_batch: int = 1024,
    dtype=np.float32,
    method: Literal["auto", "matmul", "gather"] = "auto",
):
    """One-sided block-permutation test of a per-voxel prediction score.

    The measured test series is cut into blocks of ``block_length`` samples
    inside each run; blocks are shuffled within their run (see
    :func:`block_permutations`), which keeps the autocorrelation that an
    ordinary shuffle would destroy. The same permutations are used for every
    voxel, so the maximum over voxels gives a family-wise (max-statistic) null.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples, n_voxels)
        Measured held-out responses.
    y_pred : ndarray of shape (n_samples, n_voxels)
        Predictions for the same samples.
    runs : ndarray of shape (n_samples,), optional
        Run label of every test sample (contiguous runs); None = one run.
    block_length : int
        Samples per block; choose it longer than the autocorrelation of the
        responses (e.g. 10 TRs ~ 15-20 s). 1 = unblocked shuffle.
    n_permutations : int
    metric : {"r", "r2", "cosine"}
    seed : int or None
    return_fwer : bool
        Also return max-statistic family-wise-error-corrected p-values.
    voxel_batch : int
        Voxels processed per matrix product (memory ~ n_permutations * voxel_batch).
    dtype : numpy dtype
        Precision of the null computation (float32 default; the observed
        scores are always accumulated in float64). With float32, a null value
        within 1e-5 (relative) of the observed score counts as ">=", so that
        rounding cannot break the tie of an identity permutation; this errs
        toward larger p-values (at most by a few ``1 / (1 + n_permutations)``).
        Pass ``np.float64`` for exact parity with a float64 per-voxel loop.
    method : {"auto", "matmul", "gather"}
        "matmul" = block-pair cross-products times a permutation-incidence
        matrix; "gather" = permuted samples times predictions. "auto" takes
        "matmul" unless the block pairs outnumber 4x the samples.

    Returns
    -------
    scores : ndarray of shape (n_voxels,)
        Observed metric (NaN for constant voxels).
    p_values : ndarray of shape (n_voxels,)
        ``(1 + #{null >= observed}) / (1 + n_permutations)``; NaN where the
        score is NaN.
    p_fwer : ndarray of shape (n_voxels,), only if ``return_fwer``
        ``(1 + #{max-over-voxels null >= observed}) / (1 + n_permutations)``.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    metric = _check_metric(metric)
    n, v = y_true.shape
    runs = _check_runs(runs, n)
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}.")
    if method not in ("auto", "matmul", "gather"):
        raise ValueError(f"method={method!r}; use 'auto', 'matmul' or 'gather'.")
    n_perm = int(n_permutations)
    scores = np.empty(v, dtype=np.float64)

    if not has_exchangeable_blocks(runs, block_length):
        raise ValueError(
            f"block_length={block_length} leaves no two exchangeable blocks in any run; "
            "use a shorter block_length or more test samples."
        )
    blocks, groups, src = _perm_sources(runs, block_length, n_perm, seed)
    n_pairs = sum(g.size**2 for g in groups)
    if method == "auto":
        method = "matmul" if n_pairs <= 4 * n else "gather"

    if method == "matmul":
        # pair index of (source block i, destination block j) inside its group
        pair_offset = np.cumsum([0] + [g.size**2 for g in groups])
        group_of = np.empty(len(blocks), dtype=np.int64)
        pos = np.empty(len(blocks), dtype=np.int64)
        for gi, g in enumerate(groups):
            group_of[g] = gi
            pos[g] = np.arange(g.size)
        sizes = np.array([g.size for g in groups])
        # permutation b moves block src[b, j] onto block j: it uses pair (src[b, j], j)
        cols = pair_offset[group_of][None, :] + pos[src] * sizes[group_of][None, :] + pos[None, :]
        Q = np.zeros((n_perm, n_pairs), dtype=dtype)
        np.put_along_axis(Q, cols, 1.0, axis=1)
    else:
        perms = np.stack([_expand(blocks, row) for row in src])

    counts = np.zeros(v, dtype=np.int64)
    max_null = np.full(n_perm, -np.inf)
    for start in range(0, v, int(voxel_batch)):
        sl = slice(start, min(start + int(voxel_batch), v))
        a = y_true[:, sl].astype(np.float64)
        b = y_pred[:, sl].astype(np.float64)
        a_used, b_used, offset, gain = _affine_terms(a, b, metric)
        with np.errstate(invalid="ignore"):
            obs = offset + gain * np.einsum("tv,tv->v", a_used, b_used)
        obs[~np.isfinite(gain)] = np.nan  # constant voxel
        scores[sl] = obs
        if method == "matmul":
            a_d = a_used.astype(dtype, copy=False)
            b_d = b_used.astype(dtype, copy=False)
            C = np.empty((n_pairs, a.shape[1]), dtype=dtype)
            for gi, g in enumerate(groups):
                L = blocks[g[0]].size
                idx = np.concatenate([blocks[i] for i in g])
                A = a_d[idx].reshape(g.size, L, -1).transpose(2, 0, 1)
                B = b_d[idx].reshape(g.size, L, -1).transpose(2, 1, 0)
                # (v, i, L) @ (v, L, j) -> (v, i, j): batched over voxels
                C[pair_offset[gi] : pair_offset[gi + 1]] = np.matmul(A, B).reshape(a.shape[1], -1).T
            cross = Q @ C
        else:
            a_d = a_used.astype(dtype, copy=False)
            b_d = b_used.astype(dtype, copy=False)
            cross = np.empty((n_perm, a.shape[1]), dtype=dtype)
            for p in range(n_perm):
                cross[p] = np.einsum("tv,tv->v", a_d[perms[p]], b_d)
        # null >= obs  <=>  cross >= (obs - offset) / gain   (gain > 0 for every metric)
        # tolerance: a float32 null must not break the exact tie of the identity permutation
        tol = (1e-5 if np.dtype(dtype) == np.float32 else 1e-12) * np.maximum(1.0, np.abs(obs))
        with np.errstate(invalid="ignore", divide="ignore"):
            thr = ((obs - tol - offset) / gain).astype(dtype)
        counts[sl] = np.count_nonzero(cross >= thr, axis=0)
        if return_fwer:
            with np.errstate(invalid="ignore"):
                null = offset + gain * cross.astype(np.float64)
            null[:, ~np.isfinite(obs)] = -np.inf
            max_null = np.maximum(max_null, null.max(axis=1))

    p_values = (1.0 + counts) / (1.0 + n_perm)
    p_values[~np.isfinite(scores)] = np.nan
    if not return_fwer:
        return scores, p_values
    p_fwer = fwer_max_statistic(scores, max_null)
    return scores, p_values, p_fwer


def fwer_max_statistic(scores, max_null) -> np.ndarray:
    """Family-wise-error p-values from the max-over-voxels permutation null.

    Parameters
    ----------
    scores : ndarray of shape (n_voxels,)
    max_null : ndarray of shape (n_permutations,)
        Maximum over voxels of the null statistic, per permutation.

    Returns
    -------
    p_fwer : ndarray of shape (n_voxels,)
        ``(1 + #{max_null >= score}) / (1 + n_permutations)``; NaN where score is NaN.
    """
    scores = np.asarray(scores, dtype=np.float64)
    max_null = np.sort(np.asarray(max_null, dtype=np.float64).ravel())
    if max_null.size == 0:
        raise ValueError("max_null is empty; pass the per-permutation maxima of the null.")
    n_ge = max_null.size - np.searchsorted(max_null, scores, side="left")
    p = (1.0 + n_ge) / (1.0 + max_null.size)
    p[~np.isfinite(scores)] = np.nan
    return p


# --------------------------------------------------------------------------- FDR
def fdr_bh(p_values, q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg false-discovery-rate control (statsmodels ``fdr_bh``).

    NaN p-values (e.g. constant voxels) are left out of the family and stay
    NaN / not rejected; the output keeps the input shape.

    Parameters
    ----------
    p_values : ndarray of any shape
    q : float in (0, 1)
        Target false discovery rate.

    Returns
    -------
    reject : ndarray of bool, same shape
    q_values : ndarray of float, same shape (BH-adjusted p-values)
    """
    from statsmodels.stats.multitest import multipletests

    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}.")
    p = np.asarray(p_values, dtype=np.float64)
    flat = p.ravel()
    finite = np.isfinite(flat)
    if ((flat[finite] < 0) | (flat[finite] > 1)).any():
        raise ValueError("p_values must lie in [0, 1]; got values outside that range.")
    reject = np.zeros(flat.shape, dtype=bool)
    q_values = np.full(flat.shape, np.nan)
    if finite.any():
        rej, padj, _, _ = multipletests(flat[finite], alpha=q, method="fdr_bh")
        reject[finite] = rej
        q_values[finite] = padj
    return reject.reshape(p.shape), q_values.reshape(p.shape)


# --------------------------------------------------------------------------- bootstrap
def bootstrap_ci(
    y_true,
    y_pred,
    runs=None,
    block_length: int = 10,
    n_bootstrap: int = 1000,
    metric: Metric = "r",
    ci: float = 0.95,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile confidence interval of a per-voxel score, resampling test blocks.

    Blocks (contiguous, within runs, as in :func:`block_indices`) are drawn
    with replacement; every metric is rebuilt from per-block sums, so all
    resamples of all voxels come from one matrix product.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples, n_voxels)
    runs : ndarray of shape (n_samples,), optional
    block_length : int
    n_bootstrap : int
    metric : {"r", "r2", "cosine"}
    ci : float in (0, 1)
    seed : int or None

    Returns
    -------
    low, high : ndarray of shape (n_voxels,)
    boot : ndarray of shape (n_bootstrap, n_voxels)
        The bootstrap distribution.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    metric = _check_metric(metric)
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}.")
    n = y_true.shape[0]
    runs = _check_runs(runs, n)
    blocks = block_indices(runs, block_length)
    if len(blocks) < 2:
        raise ValueError(f"block_length={block_length} gives fewer than 2 blocks; use shorter blocks.")
    a = y_true.astype(np.float64)
    b = y_pred.astype(np.float64)
    stats = np.stack(
        [
            np.stack([a[i].sum(0), b[i].sum(0), (a[i] ** 2).sum(0), (b[i] ** 2).sum(0), (a[i] * b[i]).sum(0), np.full(a.shape[1], i.size)])
            for i in blocks
        ]
    )  # (n_blocks, 6, n_voxels)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(blocks), size=(int(n_bootstrap), len(blocks)))
    W = np.zeros((int(n_bootstrap), len(blocks)))
    np.add.at(W, (np.repeat(np.arange(int(n_bootstrap)), len(blocks)), draws.ravel()), 1.0)
    S = np.tensordot(W, stats, axes=(1, 0))  # (n_boot, 6, n_voxels)
    sa, sb, saa, sbb, sab, m = (S[:, k] for k in range(6))
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "r":
            cov = sab - sa * sb / m
            boot = cov / np.sqrt((saa - sa**2 / m) * (sbb - sb**2 / m))
        elif metric == "cosine":
            boot = sab / np.sqrt(saa * sbb)
        else:
            boot = 1.0 - (saa + sbb - 2 * sab) / (saa - sa**2 / m)
    boot[~np.isfinite(boot)] = np.nan
    alpha = (1 - ci) / 2
    low, high = np.nanquantile(boot, [alpha, 1 - alpha], axis=0) if np.isfinite(boot).any() else (
        np.full(a.shape[1], np.nan),
        np.full(a.shape[1], np.nan),
    )
    return low, high, boot


# --------------------------------------------------------------------------- paired tests
def paired_statistics(
    a,
    b,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
    nan_policy: Literal["omit", "propagate"] = "omit",
) -> dict:
    """The one paired comparison every table uses: t, Wilcoxon, effect sizes, spread.

    Parameters
    ----------
    a, b : ndarray of shape (n_units,)
        Paired values (held-out runs, or subjects); the difference is ``a - b``.
    alternative : {"two-sided", "greater", "less"}
        Direction of ``a - b`` for both tests.
    nan_policy : {"omit", "propagate"}
        "omit" drops pairs with a non-finite member; "propagate" makes every
        statistic NaN when there is one (scipy's default).

    Returns
    -------
    dict with ``n``, ``mean_diff``, ``median_diff``, ``sd_diff`` (ddof=1),
    ``sem_diff``, ``mad_diff`` (raw median absolute deviation), ``n_better``
    (#d > 0), ``cohen_dz`` (mean / sd), ``t``, ``p_t`` (``scipy.stats.ttest_rel``),
    ``w``, ``p_wilcoxon`` (``scipy.stats.wilcoxon`` on the differences, zeros
    dropped) and ``rank_biserial`` (``(W+ - W-) / (W+ + W-)``). A test is NaN
    with fewer than 2 units, or (t) zero spread, or (Wilcoxon) all
    differences zero.
    """
    from scipy import stats as ss

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"a has shape {a.shape} and b has shape {b.shape}; pair them unit by unit as two 1-D arrays of "
            "equal length."
        )
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative={alternative!r}; use 'two-sided', 'greater' or 'less'.")
    if nan_policy not in ("omit", "propagate"):
        raise ValueError(f"nan_policy={nan_policy!r}; use 'omit' or 'propagate'.")
    d = a - b
    nan = np.nan
    if nan_policy == "omit":
        d = d[np.isfinite(d)]
    elif not np.all(np.isfinite(d)):
        return dict(n=d.size, mean_diff=nan, median_diff=nan, sd_diff=nan, sem_diff=nan, mad_diff=nan,
                    n_better=int((d > 0).sum()), cohen_dz=nan, t=nan, p_t=nan, w=nan, p_wilcoxon=nan,
                    rank_biserial=nan)
    n = d.size
    sd = float(d.std(ddof=1)) if n > 1 else nan
    out = dict(n=n, mean_diff=float(d.mean()) if n else nan, median_diff=float(np.median(d)) if n else nan,
               sd_diff=sd, sem_diff=sd / np.sqrt(n) if n > 1 else nan,
               mad_diff=float(np.median(np.abs(d - np.median(d)))) if n else nan,
               n_better=int((d > 0).sum()), cohen_dz=float(d.mean() / sd) if n > 1 and sd > 0 else nan)
    if n > 1 and sd > 0:
        t = ss.ttest_1samp(d, 0.0, alternative=alternative)
        out.update(t=float(t.statistic), p_t=float(t.pvalue))
    else:
        out.update(t=nan, p_t=nan)
    nz = d[d != 0]
    if n > 1 and nz.size:
        w = ss.wilcoxon(d, alternative=alternative)
        ranks = ss.rankdata(np.abs(nz))
        w_plus, w_minus = ranks[nz > 0].sum(), ranks[nz < 0].sum()
        out.update(w=float(w.statistic), p_wilcoxon=float(w.pvalue),
                   rank_biserial=float((w_plus - w_minus) / (w_plus + w_minus)))
    else:
        out.update(w=nan, p_wilcoxon=nan, rank_biserial=nan)
    return out


def paired_test(
    a,
    b,
    test: Literal["wilcoxon", "t"] = "wilcoxon",
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
    names=None,
) -> pd.DataFrame:
    """Paired comparison across subjects (model A vs B, prompt vs baseline), one row per column.

    A tidy view of :func:`paired_statistics` (pairs with a NaN are omitted).

    Parameters
    ----------
    a, b : ndarray of shape (n_subjects,) or (n_subjects, n_comparisons)
        One value per subject (and per ROI / layer / ... column).
    test : {"wilcoxon", "t"}
        ``scipy.stats.wilcoxon`` (signed-rank) or ``scipy.stats.ttest_rel``.
    alternative : {"two-sided", "greater", "less"}
        Direction of ``a - b``.
    names : sequence of str, optional
        Labels of the columns (default "0", "1", ...).

    Returns
    -------
    DataFrame with one row per column and columns
        ``comparison, test, n, mean_diff, median_diff, statistic, p_value,
        effect_size, effect_size_name``. Effect sizes: Cohen's d_z
        (mean / sd of the differences, ddof=1) for the t-test; matched-pairs
        rank-biserial correlation ``(W+ - W-) / (W+ + W-)`` for Wilcoxon.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a has shape {a.shape} but b has shape {b.shape}; pair them subject by subject.")
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if a.ndim != 2:
        raise ValueError(f"a and b must be (n_subjects,) or (n_subjects, n_comparisons), got {a.shape}.")
    if a.shape[0] < 2:
        raise ValueError(f"need at least 2 subjects for a paired test, got {a.shape[0]}.")
    if test not in ("wilcoxon", "t"):
        raise ValueError(f"test={test!r}; use 'wilcoxon' or 't'.")
    names = [str(i) for i in range(a.shape[1])] if names is None else [str(x) for x in names]
    if len(names) != a.shape[1]:
        raise ValueError(f"names has {len(names)} entries but there are {a.shape[1]} columns.")
    rows = []
    for k in range(a.shape[1]):
        s = paired_statistics(a[:, k], b[:, k], alternative=alternative, nan_policy="omit")
        row = {"comparison": names[k], "test": test, "n": s["n"], "mean_diff": s["mean_diff"],
               "median_diff": s["median_diff"]}
        if test == "t":
            row.update(statistic=s["t"], p_value=s["p_t"], effect_size=s["cohen_dz"], effect_size_name="cohen_dz")
        else:
            row.update(statistic=s["w"], p_value=s["p_wilcoxon"], effect_size=s["rank_biserial"],
                       effect_size_name="rank_biserial")
        rows.append(row)
    return pd.DataFrame(rows)


def mad(x, axis: int | None = 0, scale: float | str = 1.0) -> np.ndarray:
    """Median absolute deviation, ignoring NaN (Xiao et al.'s dispersion across subjects).

    ``scale=1`` is the raw MAD (as Xiao et al.); ``scale="normal"`` makes it a
    consistent estimator of the standard deviation (scipy's convention).
    """
    from scipy.stats import median_abs_deviation

    return median_abs_deviation(np.asarray(x, dtype=np.float64), axis=axis, scale=scale, nan_policy="omit")


def sem(x, axis: int | None = 0) -> np.ndarray:
    """Standard error of the mean (ddof=1), ignoring NaN (the NSD study's error bars)."""
    x = np.asarray(x, dtype=np.float64)
    n = np.sum(np.isfinite(x), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanstd(x, axis=axis, ddof=1) / np.sqrt(n)
