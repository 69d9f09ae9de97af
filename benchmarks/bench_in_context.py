"""Cost of in-context features (k worked examples with their images) against plain extraction.

A config-built Qwen2.5-VL (224 x 224 images -> 64 image tokens), 3 prompts x
N images. Timed interleaved on the same loaded model (best of --repeats):

- plain, naive  : one full forward per (image, prompt)          (the reference, ratio 1)
- plain, reuse  : encoder + shared prefix once per image        (the default path)
- icl k=0       : the in-context path with no examples
- icl k (text)  : k text-only examples (instruction + answer)
- icl k (images): k examples with their images (each image encoded once, reused as an example)
- icl k (images, no encoder cache): every example image re-encoded for every query

    PYTHONPATH=src python benchmarks/bench_in_context.py [--images 8] [--k 2] [--repeats 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; best of each is kept")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging

    import brainalign.features.in_context as icl
    from brainalign.features.registry import load_extractor
    from brainalign.features.tiny.models import build_tiny_qwen2_5_vl

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    prompts = {
        "caption": "What is the caption of the image?",
        "describe": "Describe this image in detail.",
        "people": "Are there any people in this image? If yes, describe them.",
    }
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(args.images)]
    answers = [f"A picture of object {i}." for i in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_qwen2_5_vl(tmp, hidden_size=128, num_layers=4, vision_hidden=64, vision_depth=4,
                                     intermediate_size=512, vision_intermediate=256, seed=0)
        ex = load_extractor(path, device="cpu")
        chosen = icl.choose_examples([str(i) for i in range(args.images)], args.k, seed=0)

        def icl_images(cache_size):
            ctx = icl.build_contexts(images, answers, chosen, with_stimuli=True)
            return icl.extract_in_context(ex, images, prompts, ctx, "all", pooling="mean",
                                          encoder_cache_size=cache_size)

        runs = {
            "plain, naive": lambda: ex.extract(images, prompts, "all", pooling="mean", reuse=False),
            "plain, reuse": lambda: ex.extract(images, prompts, "all", pooling="mean", reuse=True),
            "icl k=0": lambda: icl.in_context_features(ex, images, prompts, answers, k=0, pooling="mean"),
            f"icl k={args.k} (text)": lambda: icl.in_context_features(ex, images, prompts, answers, k=args.k,
                                                                      with_stimuli=False, pooling="mean"),
            f"icl k={args.k} (images)": lambda: icl_images(256),
            f"icl k={args.k} (images, no encoder cache)": lambda: icl_images(1),
        }
        best = {name: np.inf for name in runs}
        for _ in range(args.repeats):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    ref = best["plain, naive"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.images} images x {len(prompts)} prompts, k={args.k}, threads={args.threads}, "
          f"load average {load:.2f} (best of {args.repeats})")
    for name, t in best.items():
        print(f"  {name:42s} {t:7.2f} s   x{t / ref:5.2f} of plain naive")


if __name__ == "__main__":
    main()
