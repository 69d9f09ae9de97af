"""Throughput of the block-permutation test against a per-voxel loop, in the same run.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_stats.py [--voxels 100000] [--loop-voxels 300]

Problem (issue 6): 1000 block permutations (blocks of 10 samples, within 6
runs of 100) on 100k voxels x 600 samples, Pearson r.

Peers, all on the same data and the same permutations:
* ``permutation_test`` (vectorised; block-pair cross-products times a
  permutation-incidence matrix), timed on every voxel;
* ``loop-voxel``: a plain loop over voxels, each voxel's 1000 permuted series
  built by fancy indexing and correlated in one numpy call — timed on
  ``--loop-voxels`` voxels and extrapolated linearly to all voxels;
* ``loop-naive``: a loop over voxels and permutations calling
  ``np.corrcoef`` — timed on 5 voxels and extrapolated.

Second part (``--ceiling-voxels``, 0 to skip): the subject-subset ceiling
extrapolation, 100 bootstrap fits of v0 (1 - exp(-x / tau)) per voxel on 25
points, ``method="profile"`` (vectorised exact grid profile) against
``method="curve_fit"`` (scipy, per voxel and resample; timed on 10 voxels
and extrapolated).
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from brainalign.analysis.stats import block_permutations, permutation_test


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxels", type=int, default=100_000)
    ap.add_argument("--samples-per-run", type=int, default=100)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--permutations", type=int, default=1000)
    ap.add_argument("--block-length", type=int, default=10)
    ap.add_argument("--loop-voxels", type=int, default=300)
    ap.add_argument("--ceiling-voxels", type=int, default=5000)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    n = args.runs * args.samples_per_run
    runs = np.repeat(np.arange(args.runs), args.samples_per_run)
    y_true = rng.standard_normal((n, args.voxels), dtype=np.float32)
    y_pred = (0.1 * y_true + rng.standard_normal((n, args.voxels), dtype=np.float32)).astype(np.float32)
    print(f"data: {args.voxels} voxels x {n} samples, {args.permutations} permutations, block {args.block_length}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, numpy {np.__version__}, {platform.processor() or platform.machine()}")

    t0 = time.perf_counter()
    scores, p = permutation_test(y_true, y_pred, runs, args.block_length, args.permutations, "r", seed=0)
    t_vec = time.perf_counter() - t0
    vps_vec = args.voxels / t_vec

    perms = block_permutations(runs, args.block_length, args.permutations, seed=0)  # the same permutations
    m = min(args.loop_voxels, args.voxels)
    t0 = time.perf_counter()
    p_loop = np.empty(m)
    for v in range(m):
        a = y_true[:, v].astype(np.float64)
        b = y_pred[:, v].astype(np.float64)
        b = (b - b.mean()) / b.std()
        null_series = a[perms]  # (n_perm, n)
        null_series = (null_series - null_series.mean(1, keepdims=True)) / null_series.std(1, keepdims=True)
        null = null_series @ b / n
        obs = np.corrcoef(a, b)[0, 1]
        p_loop[v] = (1 + np.sum(null >= obs - 1e-12)) / (1 + args.permutations)
    t_loop = time.perf_counter() - t0
    vps_loop = m / t_loop

    k = 5
    t0 = time.perf_counter()
    for v in range(k):
        for perm in perms:
            np.corrcoef(y_true[perm, v], y_pred[:, v])
    t_naive = time.perf_counter() - t0
    vps_naive = k / t_naive

    agree = np.max(np.abs(p_loop - p[:m]))
    print(f"vectorised permutation_test : {t_vec:8.2f} s for {args.voxels} voxels -> {vps_vec:12,.0f} voxels/s")
    print(f"loop-voxel (numpy per voxel): {t_loop:8.2f} s for {m} voxels  -> {vps_loop:12,.0f} voxels/s "
          f"(extrapolated {args.voxels / vps_loop:,.0f} s for all)")
    print(f"loop-naive (corrcoef x perm): {t_naive:8.2f} s for {k} voxels    -> {vps_naive:12,.1f} voxels/s "
          f"(extrapolated {args.voxels / vps_naive:,.0f} s for all)")
    print(f"speed-up vs loop-voxel: {vps_vec / vps_loop:,.0f}x ; vs loop-naive: {vps_vec / vps_naive:,.0f}x "
          f"(goal >= 50x); max |p_vectorised - p_loop| on the looped voxels = {agree:.2g}")

    if args.ceiling_voxels > 0:
        from brainalign.analysis.ceiling import extrapolate_ceiling

        V = args.ceiling_voxels
        x = np.repeat(np.arange(1, 6), 5).astype(float)
        v0 = rng.uniform(0.2, 0.8, V)
        tau = rng.uniform(0.5, 3.0, V)
        r = v0 * (1 - np.exp(-x[:, None] / tau)) + 0.02 * rng.standard_normal((x.size, V))
        t0 = time.perf_counter()
        prof = extrapolate_ceiling(x, r, 100, seed=42, method="profile")
        t_prof = time.perf_counter() - t0
        k = 10
        t0 = time.perf_counter()
        cf = extrapolate_ceiling(x, r[:, :k], 100, seed=42, method="curve_fit")
        t_cf = time.perf_counter() - t0
        diff = np.max(np.abs(prof["v0"].to_numpy()[:k] - cf["v0"].to_numpy()))
        print(f"ceiling profile   : {V / t_prof:10,.0f} voxels/s ({V} voxels, 100 bootstraps)")
        print(f"ceiling curve_fit : {k / t_cf:10,.1f} voxels/s ({k} voxels, extrapolated) -> "
              f"{(V / t_prof) / (k / t_cf):,.0f}x; max |v0 difference| = {diff:.1g}; "
              f"median |v0 - planted| = {np.median(np.abs(prof['v0'] - v0)):.3f}")


if __name__ == "__main__":
    main()
