"""Cost and effect of RidgeCV's float64 re-scoring of near-tied alphas (issue 19 §3), run by hand.

For each case the solver runs with the re-scoring on (default ``NEAR_TIE_RTOL``) and off
(``NEAR_TIE_RTOL = -1``) in the same process, alternately, best of ``--repeat``; it prints the time ratio
on/off (noisy on a shared machine), the time of the re-scoring itself against the float32 CV scoring
measured chunk by chunk (robust to other load), how many voxels were re-scored, and how many selected alphas differ from himalaya's
``solve_ridge_cv_svd`` in float64 (the reference without float32 rounding) and in float32.

    .venv/bin/python benchmarks/bench_near_ties.py            # ~1-2 min on 2 shared cores
    .venv/bin/python benchmarks/bench_near_ties.py --repeat 5
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.model_selection import KFold

import brainalign.encoding.ridge as ridge

CASES = {
    # name: (n_samples, n_features, n_voxels, alphas)
    "600x128x4000, 20 alphas (bench_ridge --small grid)": (600, 128, 4000, np.logspace(1, 4, 20)),
    "200x20x20000, 80 alphas over 4 decades": (200, 20, 20000, np.logspace(0, 4, 80)),
    "100x10x3000, 300 alphas over 3 decades (tie-prone)": (100, 10, 3000, np.logspace(0, 3, 300)),
}


def _data(n, p, v, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)).astype(np.float32)
    Y = X @ (rng.standard_normal((p, v)) * 0.3 / np.sqrt(p)) + rng.standard_normal((n, v))
    return X, Y.astype(np.float32)


def _himalaya_index(X, Y, alphas, folds, dtype):
    from himalaya.backend import set_backend
    from himalaya.ridge import solve_ridge_cv_svd

    set_backend("numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best = solve_ridge_cv_svd(X.astype(dtype), Y.astype(dtype), alphas=alphas, cv=folds)[0]
    return np.abs(np.log(np.asarray(best, float))[:, None] - np.log(alphas)[None]).argmin(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    default = ridge.NEAR_TIE_RTOL
    for name, (n, p, v, alphas) in CASES.items():
        X, Y = _data(n, p, v)
        folds = list(KFold(5).split(X))
        times = {"on": [], "off": []}
        res = {}
        for _ in range(args.repeat):
            for mode, rtol in (("on", default), ("off", -1.0)):
                ridge.NEAR_TIE_RTOL = rtol
                t = time.perf_counter()
                res[mode] = ridge.solve_ridge_cv(X, Y, alphas, folds, chunk_voxels=2048)
                times[mode].append(time.perf_counter() - t)
        ridge.NEAR_TIE_RTOL = default
        # voxels re-scored: those whose two best float32 scores are within the tie width
        ops = ridge.prepare_folds(X, folds, alphas)
        n_ref, t_cv, t_ref = 0, 0.0, 0.0
        for a in range(0, v, 2048):
            t = time.perf_counter()
            sc = ridge.cv_scores_chunk(ops, Y[:, a:a + 2048]).mean(0)
            t_cv += time.perf_counter() - t
            t = time.perf_counter()
            n_ref += int(ridge.refine_near_ties(ops, Y[:, a:a + 2048], sc, alphas)[1].sum())
            t_ref += time.perf_counter() - t
        h64 = _himalaya_index(X, Y, alphas, folds, np.float64)
        h32 = _himalaya_index(X, Y, alphas, folds, np.float32)
        on, off = min(times["on"]), min(times["off"])
        print(f"{name}: on {on:.2f} s, off {off:.2f} s, ratio on/off {on / off:.3f}; re-scoring / float32 CV scoring, timed chunk by chunk: {t_ref / t_cv:.3f}; re-scored {n_ref} of {v} voxels; "
              f"alphas != himalaya float64: on {(res['on'].best_index != h64).sum()}, "
              f"off {(res['off'].best_index != h64).sum()}; himalaya float32 != float64: {(h32 != h64).sum()}")


if __name__ == "__main__":
    main()
