"""Prompt reuse vs naive extraction on a config-built Qwen2.5-VL.

10 prompts x 32 images (224 x 224 -> 256 patches, 64 image tokens). Naive:
one full forward per (image, prompt). Reuse: vision encoder and shared prefix
once per image, the 10 prompt suffixes as one batch. Timed A/B/A/B on the same
loaded model; the best of each is reported with the machine load.

    PYTHONPATH=src python benchmarks/bench_prompt_reuse.py [--repeats 2] [--threads 1] [--pooling generated]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def model_flops_per_image(ex, n_text_tokens: float) -> float:
    """~2 x non-embedding parameters x tokens, for the vision tower and the LM (one image, one prompt)."""
    visual = ex.model.model.visual
    lm = ex.language_model
    p_vis = sum(p.numel() for n, p in visual.named_parameters() if "patch_embed" not in n)
    p_lm = sum(p.numel() for n, p in lm.named_parameters() if "embed_tokens" not in n)
    n_patches = 256
    return 2 * (p_vis * n_patches + p_lm * (n_text_tokens + 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="A/B pairs; best of each is kept")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--pooling", default="mean", help="mean | stimulus | prompt | last | generated")
    ap.add_argument("--max-new-tokens", type=int, default=8, help="response length for --pooling generated")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging

    from brainalign.features.pooling import GenerationConfig
    from brainalign.features.prompts import nsd_instructions
    from brainalign.features.registry import load_extractor
    from brainalign.features.tiny.models import build_tiny_qwen2_5_vl

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)

    prompts = nsd_instructions(range(1, 11))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_qwen2_5_vl(
            tmp, hidden_size=128, num_layers=4, vision_hidden=64, vision_depth=4,
            intermediate_size=512, vision_intermediate=256, seed=0,
            # a vocabulary that covers the prompts, so they tokenize into word-sized pieces as with Qwen's
            vocab_size=1500, extra_text=list(nsd_instructions().values()),
        )
        ex = load_extractor(path, device="cpu", prompt_batch_size=len(prompts),
                            generation=GenerationConfig(max_new_tokens=args.max_new_tokens))
    report = ex.token_report(prompts, n_stimulus_tokens=0)
    n_text = np.mean([v["input_tokens"] for v in report.values()])
    n_prompt = [v["prompt_tokens"] for v in report.values()]
    flops = model_flops_per_image(ex, n_text)

    ex.extract(images[:2], prompts, "all", pooling=args.pooling, reuse=False)  # warm-up
    ex.extract(images[:2], prompts, "all", pooling=args.pooling, reuse=True)
    times: dict[str, list[float]] = {"naive": [], "reuse": []}
    feats = {}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for mode in ("naive", "reuse"):
            t0 = time.perf_counter()
            feats[mode] = ex.extract(images, prompts, "all", pooling=args.pooling, reuse=mode == "reuse")
            times[mode].append(time.perf_counter() - t0)
    load_after = os.getloadavg()
    diff = max(np.abs(feats["naive"][k].values - feats["reuse"][k].values).max() for k in prompts)
    if args.pooling == "generated":
        same = all(feats["naive"][k].meta["generated_text"] == feats["reuse"][k].meta["generated_text"] for k in prompts)
        print(f"generated texts identical naive vs reuse: {same} (max_new_tokens={args.max_new_tokens})")
    naive, reuse = min(times["naive"]), min(times["reuse"])
    print(f"model: Qwen2.5-VL config-built (LM 128x4, vision 64x4), ~{flops / 1e6:.0f} MFLOPs per image+prompt")
    print(f"workload: {len(prompts)} prompts x {len(images)} images (224x224, 64 image tokens), "
          f"pooling={args.pooling}, torch threads={args.threads}")
    print(f"text tokens per sequence: {n_text:.1f} (prompt tokens {min(n_prompt)}..{max(n_prompt)})")
    print(f"naive runs s: {', '.join(f'{t:.2f}' for t in times['naive'])}")
    print(f"reuse runs s: {', '.join(f'{t:.2f}' for t in times['reuse'])}")
    print(f"naive s: {naive:.3f}")
    print(f"reuse s: {reuse:.3f}")
    print(f"ratio reuse/naive: {reuse / naive:.3f}  (goal <= 0.3)")
    print(f"max abs diff: {diff:.2e}")
    print(f"load average before/after (1 min): {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
