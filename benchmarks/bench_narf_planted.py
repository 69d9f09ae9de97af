"""NARF+Label vs label-only LoRA fine-tuning on held-out generated problems in the planted world (issue 9).

Run by hand (about 35 s per seed on one core):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_narf_planted.py 0 1 2

Settings are compare_finetuning's defaults (lr 1e-2, brain weight 10, 20 epochs, best epoch by validation,
8 labelled of 48 fMRI items, κ >= 4, consistent-item encoders), chosen on exploration seeds 20-23 with their
validation problems. Result recorded on 2026-11-23 for the held-out seeds 0 1 2 (60 test problems each):
label-only 0.767 / 0.683 / 0.800, NARF+Label 0.600 / 0.633 / 0.850, mean margin -0.056: NARF+Label does NOT
beat label-only here. (Without best-epoch selection, on the exploration seeds' validation problems, it did:
+0.10, -0.03, +0.10, +0.20 - the brain term then mostly acted against label overfitting.)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np


def main(seeds):
    from transformers.utils import logging

    from brainalign.steering.simulate import compare_finetuning, planted_finetune_study

    logging.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            st = planted_finetune_study(Path(tmp) / f"s{seed}", seed=seed)
            res = compare_finetuning(st, seed=seed)
            rows.append((res["label_only"], res["narf_label"]))
            print(f"seed {seed}: base {res['base']:.3f}, label-only {res['label_only']:.3f}, "
                  f"NARF+Label {res['narf_label']:.3f}, margin {res['margin']:+.3f}", flush=True)
    lab, narf = np.mean(rows, 0)
    print(f"mean over {len(seeds)} seeds: label-only {lab:.3f}, NARF+Label {narf:.3f}, margin {narf - lab:+.3f}")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0, 1, 2])
