"""NARF+Label vs label-only LoRA fine-tuning on held-out generated problems in the planted world (issue 9).

Run by hand (about 1 min of CPU per seed on one core):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_narf_planted.py 0 1 2
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_narf_planted.py --brain-code evidence 0 1 2 3 4

Per seed: test accuracy (60 held-out generated problems) of the base model, label-only and NARF+Label (8 labelled
of 48 fMRI items; compare_finetuning's defaults: lr 1e-2, brain weight 10, 20 epochs, best epoch by validation),
label-all (the labels of all 48 fMRI items, no brain term: what "more supervision on the fMRI items" buys at most),
accuracy on the 40 unlabelled fMRI items, and the brain push agreement (brainalign.steering.simulate.brain_push:
the fraction of the items the model gets wrong on which the brain loss pushes towards the planted truth).

Recorded 2026-11-23 (docs/steering.md, "NARF+Label in the planted world"):
- answer code, held-out seeds 0 1 2: label-only 0.767 0.683 0.800, NARF+Label 0.600 0.633 0.850 (mean margin
  -0.056), label-all 0.750 0.800 0.883; unlabelled fMRI items label-only -> NARF+Label 0.725->0.800,
  0.725->0.875, 0.675->0.925; brain push agreement 1.00 0.75 1.00. The brain term teaches the fMRI items, labels
  on those items would transfer (label-all), but the brain-taught fit does not transfer to new problems.
- answer code, --all-orders (the seed's protocol), held-out seeds 0-4: margins -0.119 -0.056 +0.050 +0.047 +0.083
  (label-only 0.761, NARF+Label 0.762, label-all 0.802 on average; 3 wins of 5): not a reliable win.
- evidence code (graded brain states), held-out seeds 0-4: margins -0.033 -0.033 -0.017 +0.067 +0.033
  (mean +0.003, 2 wins of 5).
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np


def main(seeds, brain_code: str = "answer", all_orders: bool = False):
    from transformers.utils import logging

    from brainalign.steering.directions import accuracy_with_offset
    from brainalign.steering.finetune import brain_finetune
    from brainalign.steering.simulate import brain_push, compare_finetuning, planted_finetune_study

    logging.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            st = planted_finetune_study(Path(tmp) / f"s{seed}", seed=seed, brain_code=brain_code, all_orders=all_orders)
            res = compare_finetuning(st, seed=seed)
            full = brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, st.labels, layers=[st.layer],
                                  brain_weight=0.0, lr=1e-2, epochs=20, grad_accumulate=16, seed=seed,
                                  val_prompts=st.val_prompts, val_labels=st.val_labels)
            label_all = accuracy_with_offset(full.model, st.tokenizer, st.test_prompts, st.test_labels, None)["accuracy"]

            def unlabelled(model):
                ok = accuracy_with_offset(model, st.tokenizer, st.prompts, st.labels, None)["correct"]
                return float(ok[~st.label_mask].mean())

            push = brain_push(st)["agreement_wrong"]
            rows.append((res["label_only"], res["narf_label"], label_all))
            print(f"seed {seed} ({brain_code}{', all orders' if all_orders else ''}): base {res['base']:.3f}, label-only {res['label_only']:.3f}, "
                  f"NARF+Label {res['narf_label']:.3f} (margin {res['margin']:+.3f}), label-all {label_all:.3f}; "
                  f"unlabelled fMRI items: label-only {unlabelled(res['label_only_result'].model):.3f}, "
                  f"NARF+Label {unlabelled(res['narf_label_result'].model):.3f}; brain push agreement on wrong items "
                  f"{push:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    lab, narf, full = np.mean(rows, 0)
    margins = [r[1] - r[0] for r in rows]
    print(f"mean over {len(seeds)} seeds: label-only {lab:.3f}, NARF+Label {narf:.3f}, label-all {full:.3f}; "
          f"margin {narf - lab:+.3f} (NARF+Label wins {sum(m > 0 for m in margins)} of {len(margins)})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--brain-code", choices=["answer", "evidence"], default="answer")
    ap.add_argument("--all-orders", action="store_true",
                    help="validate (best epoch) and test over every premise order, as the seed does")
    a = ap.parse_args()
    main(a.seeds or [0, 1, 2], a.brain_code, a.all_orders)
