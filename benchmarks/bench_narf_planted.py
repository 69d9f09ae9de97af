"""NARF+Label vs label-only LoRA fine-tuning on held-out generated problems in the planted world (issue 9).

Run by hand (about 1.5 min of CPU per world on one core; 5-6 min with --all-orders):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_narf_planted.py 0 1 2 3 4
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_narf_planted.py --all-orders 0 1 2 3 4
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_narf_planted.py --n-fmri 48 --brain-weight 10 0 1 2

Per world: test accuracy (60 held-out generated problems, or 60 x 6 premise orders) of the base model, label-only and
NARF+Label (8 labelled of 96 fMRI items; compare_finetuning's defaults: lr 1e-2, brain weight 1, 20 epochs, best
epoch by validation), random fMRI (NARF+Label on Gaussian betas with each voxel's std: the brain term without the
brain's content), label-all (the labels of all fMRI items, no brain term: what full supervision of the fMRI items
buys), accuracy on the unlabelled fMRI items, and the brain push agreement (brainalign.steering.simulate.brain_push:
the fraction of the items the model gets wrong on which the brain loss pushes towards the planted truth).

Worlds 20-25 were used to choose the settings; worlds 0-9 are held out. Recorded 2026-11-23 (docs/steering.md):
- 96 fMRI items, brain weight 1 (the defaults), held-out worlds 0-9, 60 problems each: NARF+Label beats label-only
  in 10 of 10 (margins +0.217 +0.033 +0.067 +0.117 +0.033 +0.150 +0.150 +0.033 +0.033 +0.200, mean +0.103);
  random fMRI moves label-only by +0.017 on worlds 0-4 (NARF+Label by +0.093).
- same, --all-orders, held-out worlds 0-4: margins +0.147 +0.017 +0.106 +0.225 +0.064 (mean +0.112, 5 of 5);
  random fMRI +0.024 over label-only; label-all 0.841, NARF+Label 0.806, label-only 0.695.
- 48 fMRI items, brain weight 10 (the first planted world), held-out worlds 0-4, every premise order: margins
  -0.119 -0.056 +0.050 +0.047 +0.083 (mean +0.001, 3 wins of 5): the brain term fitted the fMRI items without
  transferring.
"""
from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np


def main(seeds, brain_code: str = "answer", all_orders: bool = False, n_fmri: int = 96,
         brain_weight: float = 1.0):
    from transformers.utils import logging

    from brainalign.steering.directions import accuracy_with_offset
    from brainalign.steering.finetune import brain_finetune
    from brainalign.steering.simulate import brain_push, compare_finetuning, planted_finetune_study

    logging.set_verbosity_error()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            st = planted_finetune_study(Path(tmp) / f"s{seed}", seed=seed, n_fmri=n_fmri, brain_code=brain_code,
                                        all_orders=all_orders)
            res = compare_finetuning(st, brain_weight=brain_weight, seed=seed, random_fmri=True)
            full = brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, st.labels, layers=[st.layer],
                                  brain_weight=0.0, lr=1e-2, epochs=20, grad_accumulate=16, seed=seed,
                                  val_prompts=st.val_prompts, val_labels=st.val_labels)
            label_all = accuracy_with_offset(full.model, st.tokenizer, st.test_prompts, st.test_labels, None)["accuracy"]

            def unlabelled(model):
                ok = accuracy_with_offset(model, st.tokenizer, st.prompts, st.labels, None)["correct"]
                return float(ok[~st.label_mask].mean())

            push = brain_push(st)["agreement_wrong"]
            rows.append((res["label_only"], res["narf_label"], label_all, res["random_fmri"]))
            print(f"seed {seed} ({brain_code}{', all orders' if all_orders else ''}): base {res['base']:.3f}, label-only {res['label_only']:.3f}, "
                  f"NARF+Label {res['narf_label']:.3f} (margin {res['margin']:+.3f}), random fMRI {res['random_fmri']:.3f}, "
                  f"label-all {label_all:.3f}; "
                  f"unlabelled fMRI items: label-only {unlabelled(res['label_only_result'].model):.3f}, "
                  f"NARF+Label {unlabelled(res['narf_label_result'].model):.3f}; brain push agreement on wrong items "
                  f"{push:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    lab, narf, full, rand = np.mean(rows, 0)
    margins = [r[1] - r[0] for r in rows]
    print(f"mean over {len(seeds)} worlds: label-only {lab:.3f}, NARF+Label {narf:.3f}, random fMRI {rand:.3f}, "
          f"label-all {full:.3f}; margin {narf - lab:+.3f} (NARF+Label wins {sum(m > 0 for m in margins)} of "
          f"{len(margins)}; random fMRI minus label-only {rand - lab:+.3f})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--brain-code", choices=["answer", "evidence"], default="answer")
    ap.add_argument("--n-fmri", type=int, default=96, help="fMRI items (betas for all, labels for 8)")
    ap.add_argument("--brain-weight", type=float, default=1.0)
    ap.add_argument("--all-orders", action="store_true",
                    help="validate (best epoch) and test over every premise order, as Xiao et al. do")
    a = ap.parse_args()
    main(a.seeds or [0, 1, 2], a.brain_code, a.all_orders, a.n_fmri, a.brain_weight)
