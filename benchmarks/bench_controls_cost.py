"""Cost of the demo's controls: the embedded demo with and without ``analysis.controls``, same process, warm cache.

Run by hand (prints seconds per stage and the ratio; the issue's budget is ≤ ~1.25):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_controls_cost.py [--repeats 1]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from brainalign import pipeline
from brainalign.cli import demo_config_path
from brainalign.config import load_config
from brainalign.features.store import FeatureStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        store = FeatureStore(cache)
        base = load_config(demo_config_path())
        off = base.model_copy(deep=True)
        off.analysis.controls = None
        pipeline.run(base, store=store)  # warm the feature cache (both prompt sets) and imports
        times = {"without": [], "with": []}
        for _ in range(args.repeats):
            for label, exp in (("without", off), ("with", base)):
                t0 = time.perf_counter()
                res = pipeline.run(exp, store=store)
                times[label].append(time.perf_counter() - t0)
                n = res.tables["run_scores"].space.nunique()
                print(f"{label:8s} controls: {times[label][-1]:7.1f} s total, {n} spaces, "
                      + ", ".join(f"{k} {v:.1f} s" for k, v in res.manifest["timings_s"].items()))
        ratio = min(times["with"]) / min(times["without"])
        print(f"ratio with/without (best of {args.repeats}): {ratio:.3f}")


if __name__ == "__main__":
    main()
