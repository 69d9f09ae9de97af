"""Sharded extraction on a dask LocalCluster vs one process, and the cost of a rerun on a complete cache.

A config-built Qwen2.5-VL (as in bench_prompt_reuse.py, smaller), N images x 3 prompts, pooling "last".
Single process: ``extract_features(..., store=...)`` with ``--threads`` torch threads. Sharded:
``extract_sharded`` on ``--workers`` single-threaded worker processes, each with a fresh store. Then the
sharded call again on the now complete cache (planning + read-back only, no model load).

    PYTHONPATH=src python benchmarks/bench_sharded.py [--images 32] [--workers 2] [--shard-size 4]

Compare the ratio only with the load average printed beside it: on a shared machine it dominates.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the single process")
    args = ap.parse_args()

    import dask
    import distributed
    import torch
    from transformers.utils import logging

    from brainalign.features import FeatureStore, extract_features, extract_sharded
    from brainalign.features.tiny.models import build_tiny_qwen2_5_vl

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    prompts = {"caption": "What is the caption of the image?", "describe": "Describe this image in detail.",
               "action": "Which action should the player take next to reach the goal?"}
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_qwen2_5_vl(os.path.join(tmp, "qwen"), hidden_size=128, num_layers=4, seed=0))
        t0 = time.perf_counter()
        single = extract_features(model, images, prompts, "all", "last", store=FeatureStore(os.path.join(tmp, "a")),
                                  device="cpu")
        t_single = time.perf_counter() - t0
        with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}), \
                distributed.LocalCluster(n_workers=args.workers, processes=True, threads_per_worker=1,
                                         dashboard_address=":0", silence_logs=50) as cluster, \
                distributed.Client(cluster) as client:
            client.run(lambda: __import__("transformers").Qwen2_5_VLForConditionalGeneration)  # warm the imports
            store = FeatureStore(os.path.join(tmp, "b"))
            t0 = time.perf_counter()
            out = extract_sharded(model, images, prompts, "all", "last", store=store, shard_size=args.shard_size,
                                  client=client, device="cpu")
            t_sharded = time.perf_counter() - t0
            t0 = time.perf_counter()
            rerun = extract_sharded(model, images, prompts, "all", "last", store=store, shard_size=args.shard_size,
                                    client=client, device="cpu")
            t_rerun = time.perf_counter() - t0
    diff = float(np.abs(out.features[model] - single).max())
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.images} images x {len(prompts)} "
          f"prompts; shard size {args.shard_size}")
    print(f"single process ({args.threads} thread(s)): {t_single:.2f} s")
    print(f"sharded, {args.workers} workers ({len(out.tasks_run)} tasks): {t_sharded:.2f} s  "
          f"(ratio sharded/single {t_sharded / t_single:.2f}; worker model loads included)")
    print(f"rerun on the complete cache: {t_rerun:.2f} s, {len(rerun.tasks_run)} tasks "
          f"(ratio rerun/first {t_rerun / t_sharded:.3f})")
    print(f"max abs difference sharded vs single: {diff:.2e}")


if __name__ == "__main__":
    main()
