"""The demo's encoding stage on 1 worker (this process) vs N dask worker processes (``encoding.n_workers``).

Builds the demo's feature spaces once (MiniLM features from a feature cache, baselines, controls: 29 spaces),
then times ``pipeline.cross_validate`` (12 leave-one-run-out folds, 13 alphas) with ``encoding.n_workers = 1``,
with ``n_workers = N`` (both one BLAS thread per fit, the default ``encoding.blas_threads``) and, as the pipeline
ran before ``blas_threads`` existed, in one process with BLAS on every core; alternating ``--repeats`` times. The LocalCluster's start-up (spawning the
processes, importing numpy/sklearn/brainalign there) is timed on its own and reported both ways: a CLI run
pays it once per process, later stages and runs in the same process reuse the workers. Checks that both give
exactly the same run scores and predictions.

``others_frac`` is the share of the machine's CPU capacity used by processes other than this one and its
children during a timed section (the machine is shared; > 0.05 means the figure is contaminated).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_workers.py               # all 29 spaces, ~2-3 min quiet
    PYTHONPATH=src .venv/bin/python benchmarks/bench_workers.py --spaces 8    # a quicker look
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from brainalign import pipeline
from brainalign.pipeline import workers
from brainalign.cli import demo_config_path
from brainalign.config import load_config
from brainalign.pipeline.controls import control_spaces
from brainalign.features.store import FeatureStore


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


def _tree_cpu_s(proc: psutil.Process, seen: dict[int, float]) -> float:
    """CPU seconds of this process plus its live children (remembering children that have exited since)."""
    for p in [proc, *proc.children(recursive=True)]:
        try:
            c = p.cpu_times()
            seen[p.pid] = c.user + c.system + getattr(c, "children_user", 0.0) + getattr(c, "children_system", 0.0)
        except psutil.NoSuchProcess:
            pass
    return sum(seen.values())


class Meter:
    """Wall time, own CPU (process tree) and the share of the machine used by others."""

    def __enter__(self):
        self.proc, self.seen = psutil.Process(), {}
        self.t0, self.busy0, self.own0 = time.perf_counter(), _machine_busy_s(), _tree_cpu_s(self.proc, self.seen)
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        busy = _machine_busy_s() - self.busy0
        self.own = _tree_cpu_s(self.proc, self.seen) - self.own0
        self.others_frac = max(0.0, (busy - self.own) / (psutil.cpu_count() * self.wall))


def demo_spaces(cache: Path):
    cfg = demo_config_path()
    exp = load_config(cfg)
    data = pipeline.load_data(exp, cfg.parent)
    store = FeatureStore(cache)
    feats, meta = pipeline.model_features(exp, data.stimuli, store)
    spaces = pipeline.build_feature_spaces(data, feats, meta, exp.models, exp.analysis.baselines, exp.seed)
    extra, _ = control_spaces(exp, data, feats, meta, store)
    return exp, data, spaces + extra


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--spaces", type=int, default=None, help="use only the first K feature spaces")
    ap.add_argument("--no-threaded-peer", action="store_true", help="skip the 1-process, all-core-BLAS peer")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "brainalign-bench-workers-cache")
    args = ap.parse_args()

    exp, data, spaces = demo_spaces(args.cache)
    if args.spaces:
        keep = spaces[: args.spaces]
        if exp.analysis.reference not in {s.name for s in keep}:
            keep = keep[:-1] + [s for s in spaces if s.name == exp.analysis.reference]
        spaces = keep
    n_folds = len(np.unique(data.recording.runs))
    setting = dict(spaces=len(spaces), folds=n_folds, voxels=data.recording.n_voxels, trs=data.recording.data.shape[0],
                   cpus=os.cpu_count(), omp_num_threads=os.environ.get("OMP_NUM_THREADS", "unset"),
                   load_avg=os.getloadavg())
    print(json.dumps(setting))

    with Meter() as start:  # processes up, and brainalign imported there (the first fit would do it)
        with workers.dask_client(args.workers) as client:
            client.run(importlib.import_module, "brainalign.pipeline")
    print(json.dumps(dict(cluster_startup_s=round(start.wall, 2), others_frac=round(start.others_frac, 3))))

    def setting_of(n: int, blas: int):
        return exp.model_copy(update=dict(encoding=exp.encoding.model_copy(update=dict(n_workers=n, blas_threads=blas))))

    peers = {"1 worker": (1, 1), f"{args.workers} workers": (args.workers, 1)}
    if not args.no_threaded_peer:  # the pipeline before encoding.blas_threads: one process, BLAS on every core
        peers[f"1 worker, {os.cpu_count()} BLAS threads"] = (1, os.cpu_count())
    times: dict[str, list[float]] = {k: [] for k in peers}
    results = {}
    for rep in range(args.repeats):
        for name, (n, blas) in peers.items():
            with Meter() as m:
                results[name] = pipeline.cross_validate(setting_of(n, blas), data, spaces)
            times[name].append(m.wall)
            print(json.dumps(dict(repeat=rep, peer=name, seconds=round(m.wall, 2), own_cpu_per_wall=round(
                m.own / m.wall, 2), others_frac=round(m.others_frac, 3))), flush=True)
    workers.close_local_clusters()

    one, many = results["1 worker"], results[f"{args.workers} workers"]
    pd.testing.assert_frame_equal(one[0], many[0], check_exact=True)
    assert all(np.array_equal(one[1][k], many[1][k], equal_nan=True) for k in one[1])
    assert all(np.array_equal(one[2][k], many[2][k]) for k in one[2])
    best = {k: min(v) for k, v in times.items()}
    t1, tn = best["1 worker"], best[f"{args.workers} workers"]
    summary = dict(identical_1_vs_n_workers=True, best_s={k: round(v, 2) for k, v in best.items()},
                   speedup_n_workers=round(t1 / tn, 2), speedup_n_workers_with_startup=round(t1 / (tn + start.wall), 2))
    threaded = f"1 worker, {os.cpu_count()} BLAS threads"
    if threaded in results:
        summary["speedup_n_workers_vs_threaded_blas"] = round(best[threaded] / tn, 2)
        summary["max_abs_diff_threaded_blas_predictions"] = float(max(
            np.nanmax(np.abs(results[threaded][1][k] - one[1][k])) for k in one[1]))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
