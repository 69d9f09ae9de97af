"""Benchmark: brainalign RidgeCV vs himalaya RidgeCV, same backend, same data, same folds.

Run by hand, not in CI::

    python benchmarks/bench_ridge.py            # the issue's case (3000 x 1024 x 20000, ~3-5 min)
    python benchmarks/bench_ridge.py --small    # quick check (~10 s)
    python benchmarks/bench_ridge.py --backend torch --small         # both on torch, CPU
    python benchmarks/bench_ridge.py --backend torch_cuda --n-voxels 100000 --chunk-voxels 16384   # issue 19's GPU goal

``--backend`` (numpy, torch, torch_cuda) is given to both: brainalign's ``RidgeCV(backend=...)`` and himalaya's
``set_backend(...)``; the GEMM peak is then measured with torch on that device, and on CUDA each method's peak
GPU memory (``torch.cuda.max_memory_allocated``) is printed too.

The case (issue 4): 3000 samples in 10 runs of 300, 1024 correlated z-scored
features (power-law spectrum), 20000 voxels (30 % informative), float32. The
last run is the test set; alphas are chosen by 5 run-wise folds
(``GroupKFold(5)`` over the 9 training runs) from ``np.logspace(1, 4, 20)``.
Each method runs ``fit`` + ``predict`` in its own subprocess (own peak RSS from
``resource.getrusage``); the data are generated once and passed as ``.npy``.

Printed: seconds of each method, their ratio (goal >= 2), max |difference| of
test R² (all voxels, and voxels whose selected alphas agree), selected-alpha
agreement, achieved GFLOP/s (analytic FLOP counts of the dominant GEMMs, below)
against a float32 GEMM peak (4096³, best of 3) measured in the same run, peak
RSS of each, and the CPU share used by *other* processes during each timed
section (``others_frac``; the machine is shared, > 0.05 means contaminated).

FLOP counts per voxel (r_f = min(n_train_f, p), r = min(n, p)):
  brainalign: Σ_f [2 r_f n_train_f (Uᵀ Y) + 2 q_f n_val_f r_f (basis GEMM) + 2 n_alphas q_f n_val_f (mix)]
              + 2 r n + 2 p r (refit) + 2 n_test p (predict)
              (default: q_f = n_alphas and no mixing term; ``brainalign-lowrank``, the opt-in
              expansion of the filter factors across alphas: q_f is its rank in fold f, printed)
  himalaya:   Σ_f [2 n_alphas n_val_f n_train_f (predictions)]
              + 2 n_used_alphas p n (refit of every used alpha) + 2 n_test p
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


# ----------------------------------------------------------------------------- data
def make_data(n_runs, run_len, n_features, n_voxels, seed=0):
    rng = np.random.default_rng(seed)
    n = n_runs * run_len
    Q, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    spectrum = 1.0 / np.sqrt(np.arange(1, n_features + 1))
    X = (rng.standard_normal((n, n_features)) * spectrum) @ Q.T
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    Y = np.empty((n, n_voxels), dtype=np.float32)
    chunk = 5000
    for c, start in enumerate(range(0, n_voxels, chunk)):
        crng = np.random.default_rng([seed, c])
        m = min(chunk, n_voxels - start)
        informative = crng.random(m) < 0.3
        k = np.exp(crng.uniform(np.log(16), np.log(n_features), m)).astype(int)
        W = crng.standard_normal((n_features, m))
        W[np.arange(n_features)[:, None] >= k[None, :]] = 0.0
        W = W[crng.permutation(n_features)]
        S = X.astype(np.float64) @ W
        S /= S.std(0) + 1e-12
        r2 = crng.uniform(0.02, 0.5, m) * informative
        Yc = S * np.sqrt(r2) + crng.standard_normal((n, m)) * np.sqrt(1 - r2)
        Y[:, start:start + m] = (Yc - Yc.mean(0)) / Yc.std(0)
    runs = np.repeat(np.arange(n_runs), run_len)
    return X, Y, runs


def folds_for(runs_train, n_folds):
    from sklearn.model_selection import GroupKFold

    return list(GroupKFold(n_folds).split(np.zeros(runs_train.size), groups=runs_train))


# ----------------------------------------------------------------------------- load
def _cpu_jiffies():
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals[:8]) - idle


class OthersMeter:
    """Share of total CPU capacity used by processes other than this one (and its children)."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        self.j0 = _cpu_jiffies()
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)
        self.c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        busy = (_cpu_jiffies() - self.j0) / hz
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (r1.ru_utime - self.r0.ru_utime + r1.ru_stime - self.r0.ru_stime
               + c1.ru_utime - self.c0.ru_utime + c1.ru_stime - self.c0.ru_stime)
        self.wall = wall
        self.own_cpu = own
        self.others_frac = max(0.0, (busy - own) / (os.cpu_count() * wall))


def gemm_peak(size=4096, repeats=3, backend="numpy"):
    """float32 GEMM GFLOP/s, best of ``repeats``: numpy, or torch on the backend's device."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    sync = lambda: None  # noqa: E731
    if backend != "numpy":
        import torch

        dev = "cuda" if backend == "torch_cuda" else "cpu"
        a, b = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)
        if dev == "cuda":
            sync = torch.cuda.synchronize
    a @ b
    sync()
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best / 1e9


# ----------------------------------------------------------------------------- worker
def _vmhwm_kib():
    """Peak RSS of this process (VmHWM). ``ru_maxrss`` is not used: Linux keeps the
    parent's high-water mark across fork + exec, so a worker started by the parent
    that holds the data would report the parent's peak."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))


def worker(method, tmp):
    tmp = Path(tmp)
    meta = json.loads((tmp / "meta.json").read_text())
    X = np.load(tmp / "X.npy")
    Y = np.load(tmp / "Y.npy")
    tr, te = np.array(meta["train"]), np.array(meta["test"])
    folds = [(np.array(a), np.array(b)) for a, b in meta["folds"]]
    alphas = np.array(meta["alphas"])
    Xtr, Ytr, Xte = X[tr], Y[tr], X[te]
    rss_data = _vmhwm_kib()
    from threadpoolctl import threadpool_info

    blas_threads = max([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] or [1])
    backend = meta["backend"]
    to_numpy = np.asarray
    if backend != "numpy":
        import torch

        torch.set_num_threads(blas_threads)  # himalaya's torch threads = brainalign's blas_threads
        if backend == "torch_cuda":
            torch.zeros(1, device="cuda")  # CUDA context outside the timed section
            torch.cuda.reset_peak_memory_stats()
    # imports outside the timed section
    if method == "himalaya":
        import warnings

        from himalaya.backend import set_backend
        from himalaya.ridge import RidgeCV

        to_numpy = set_backend(backend, on_error="raise").to_numpy
    else:
        from brainalign.encoding import RidgeCV
    with OthersMeter() as m:
        if method == "himalaya":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = RidgeCV(alphas=alphas, cv=folds, fit_intercept=False).fit(Xtr, Ytr)
        else:
            params = {"filter_rtol": 1e-7} if method == "brainalign-lowrank" else None
            # the same BLAS threads as himalaya gets (the process default); RidgeCV pins 1 unless told
            model = RidgeCV(alphas=alphas, cv=folds, fit_intercept=False, solver_params=params,
                            chunk_voxels=meta["chunk_voxels"], blas_threads=blas_threads,
                            backend=backend).fit(Xtr, Ytr)
        pred = np.asarray(to_numpy(model.predict(Xte)))  # back in host memory: the GPU work is finished
    gpu_peak = None
    if backend == "torch_cuda":
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20
    q = None
    if method == "brainalign-lowrank":  # rank of the alpha expansion per fold (untimed; for the FLOP count)
        from brainalign.encoding.ridge import prepare_folds

        q = [n_alphas if op.W is None else int(op.W.shape[1]) for op in
             prepare_folds(Xtr, folds, alphas, filter_rtol=1e-7)] if (n_alphas := len(alphas)) else None
    Yte = Y[te]
    r2 = 1 - ((Yte - pred) ** 2).sum(0) / ((Yte - Yte.mean(0)) ** 2).sum(0)
    np.save(tmp / f"{method}_r2.npy", r2)
    np.save(tmp / f"{method}_alphas.npy", np.asarray(to_numpy(model.best_alphas_), dtype=np.float64))
    out = dict(method=method, seconds=m.wall, others_frac=m.others_frac, own_cpu_per_wall=m.own_cpu / m.wall,
               peak_rss_mib=_vmhwm_kib() / 1024, rss_after_data_mib=rss_data / 1024, q=q, gpu_peak_mib=gpu_peak)
    print(json.dumps(out))


def flops(method, folds, n, p, n_test, n_alphas, n_voxels, n_used=1, q=None):
    per = 2 * n_test * p
    for k, (tr, va) in enumerate(folds):
        if method == "himalaya":
            per += 2 * n_alphas * len(va) * len(tr)
        else:
            r = min(len(tr), p)
            per += 2 * r * len(tr)
            if q is None:
                per += 2 * n_alphas * len(va) * r
            else:  # q basis operators, then mixing q partial predictions into n_alphas
                per += 2 * q[k] * len(va) * r + 2 * n_alphas * q[k] * len(va)
    r = min(n, p)
    per += 2 * n_used * p * n if method == "himalaya" else 2 * r * n + 2 * p * r
    return per * n_voxels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="600 samples x 128 features x 2000 voxels")
    ap.add_argument("--n-voxels", type=int, default=None)
    ap.add_argument("--chunk-voxels", type=int, default=2048)
    ap.add_argument("--methods", default="himalaya,brainalign",
                    help="comma list of himalaya, brainalign, brainalign-lowrank (opt-in expansion across alphas)")
    ap.add_argument("--backend", default="numpy", choices=("numpy", "torch", "torch_cuda"),
                    help="array backend of both methods (brainalign RidgeCV(backend=), himalaya set_backend)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.tmp)

    n_runs, run_len, p, v = (10, 60, 128, 2000) if args.small else (10, 300, 1024, 20000)
    v = args.n_voxels or v
    alphas = np.logspace(1, 4, 20)
    if args.backend == "torch_cuda":
        from brainalign.encoding.backend import check_backend

        try:
            check_backend("torch_cuda")  # a clear message before any data are made, where there is no GPU
        except ValueError as err:
            raise SystemExit(str(err)) from None
    print(f"# case: {n_runs} runs x {run_len} samples, {p} features, {v} voxels, 20 alphas, 5 run-wise folds; "
          f"backend {args.backend}, chunk_voxels {args.chunk_voxels}")
    print(f"# load average before: {os.getloadavg()}")
    t = time.perf_counter()
    X, Y, runs = make_data(n_runs, run_len, p, v)
    print(f"# data generated in {time.perf_counter() - t:.1f} s")
    train = np.flatnonzero(runs < n_runs - 1)
    test = np.flatnonzero(runs == n_runs - 1)
    folds = folds_for(runs[train], 5)
    with OthersMeter() as gm:
        peak = gemm_peak(2048 if args.small else 4096, backend=args.backend)
    print(json.dumps(dict(gemm_f32_peak_gflops=round(peak, 1), gemm_backend=args.backend,
                          others_frac=round(gm.others_frac, 3))))

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "X.npy", X)
        np.save(Path(tmp) / "Y.npy", Y)
        del Y
        (Path(tmp) / "meta.json").write_text(json.dumps(dict(
            train=train.tolist(), test=test.tolist(), alphas=alphas.tolist(), chunk_voxels=args.chunk_voxels,
            backend=args.backend,
            folds=[(a.tolist(), b.tolist()) for a, b in folds])))
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
        for method in args.methods.split(","):
            proc = subprocess.run([sys.executable, __file__, "--worker", method, "--tmp", tmp],
                                  env=env, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr)
                raise SystemExit(f"{method} failed")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["r2"] = np.load(Path(tmp) / f"{method}_r2.npy")
            res["alphas"] = np.load(Path(tmp) / f"{method}_alphas.npy")
            results[method] = res

    n_train = train.size
    for method, res in results.items():
        n_used = np.unique(res["alphas"]).size
        fl = flops(method, folds, n_train, p, test.size, alphas.size, v, n_used, res.get("q"))
        gf = fl / res["seconds"] / 1e9
        print(json.dumps(dict(
            method=method, seconds=round(res["seconds"], 2), others_frac=round(res["others_frac"], 3),
            own_cpu_per_wall=round(res["own_cpu_per_wall"], 2), peak_rss_mib=round(res["peak_rss_mib"]),
            rss_after_data_mib=round(res["rss_after_data_mib"]), dominant_tflop=round(fl / 1e12, 2),
            alpha_expansion_rank_per_fold=res.get("q"), gpu_peak_mib=res.get("gpu_peak_mib") and round(res["gpu_peak_mib"]),
            gflops=round(gf, 1), pct_of_gemm_peak=round(100 * gf / peak, 1))))
    if {"brainalign", "brainalign-lowrank"} <= results.keys():
        b, lr = results["brainalign"], results["brainalign-lowrank"]
        print(json.dumps(dict(ratio_default_over_lowrank=round(b["seconds"] / lr["seconds"], 2),
                              max_abs_diff_test_r2_lowrank_vs_default=float(np.abs(b["r2"] - lr["r2"]).max()))))
    if {"himalaya", "brainalign"} <= results.keys():
        h, b = results["himalaya"], results["brainalign"]
        same = np.isclose(h["alphas"], b["alphas"], rtol=1e-5)
        print(json.dumps(dict(
            backend=args.backend, ratio_himalaya_over_brainalign=round(h["seconds"] / b["seconds"], 2),
            max_abs_diff_test_r2=float(np.abs(h["r2"] - b["r2"]).max()),
            max_abs_diff_test_r2_same_alpha=float(np.abs(h["r2"] - b["r2"])[same].max()),
            alphas_equal=f"{int(same.sum())}/{same.size}",
            mean_test_r2_brainalign=float(b["r2"].mean()))))
    print(f"# load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
