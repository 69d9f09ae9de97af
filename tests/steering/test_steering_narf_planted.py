"""The planted fine-tuning world, the NARF+Label vs label-only comparison, and the issue-9 acceptance claim.

Claim (asserted below on held-out worlds 0-4): NARF+Label (8 labelled fMRI items + betas of all 96) beats label-only
fine-tuning (the same 8 labels, identical settings) on held-out generated problems. The world size (96 fMRI items) and
the brain weight (1) were chosen on exploration worlds 20-25, never on 0-9 (benchmarks/bench_narf_planted.py,
docs/steering.md).
"""
from __future__ import annotations

import copy
import dataclasses
import functools

import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from steering_fixtures import narf_world, root
from brainalign.steering import finetune
from brainalign.steering.directions import accuracy_with_offset
from brainalign.steering.encoders import LinearEncoder
from brainalign.steering.hooks import last_token_states
from brainalign.steering.simulate import brain_push, compare_finetuning, planted_finetune_study


@functools.lru_cache(maxsize=None)
def _world():
    return planted_finetune_study(root() / "narf-world", seed=5, n_fmri=32, n_labelled=6, n_val=16, n_test=24)


def _study():
    return dataclasses.replace(_world(), model=copy.deepcopy(_world().model))


def test_planted_finetune_world_hides_the_answer_in_a_learnable_readout():
    st = _study()
    assert st.label_mask.sum() == 6 and st.labels.mean() == 0.5  # median split of the fMRI items
    assert len(st.val_prompts) == 16 and len(st.test_prompts) == 24 and len(st.encoders) == len(st.subjects_Y)
    assert abs(st.readout @ st.direction) < 1e-8
    # the correct-side states decide the answer (this is what the betas encode) ...
    from brainalign.steering.hooks import last_token_states

    X = last_token_states(st.model, st.tokenizer, st.prompts, kinds=("attention",))["attention"][:, st.layer]
    sigma = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())
    off = st.kappa * sigma * np.where(st.labels, 1.0, -1.0)[:, None] * st.direction[None]
    assert accuracy_with_offset(st.model, st.tokenizer, st.prompts, st.labels, {st.layer: off.astype(np.float32)}
                                )["accuracy"] >= 0.9
    # ... while the model itself does not follow the planted truth
    assert st.model_correct.mean() < 0.8


def test_unlabelled_items_do_not_move_the_label_only_model():
    st = _study()
    before = copy.deepcopy(st.model).state_dict()
    res = finetune.brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, st.labels, layers=[st.layer],
                                  brain_weight=0.0, lr=1e-2, epochs=2, grad_accumulate=16,
                                  label_mask=np.zeros(st.labels.size, bool))
    after = res.model.state_dict()
    assert all(torch.allclose(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="label_mask has shape"):
        finetune.brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, st.labels, layers=[st.layer],
                                brain_weight=0.0, label_mask=[True])


def test_comparison_runs_both_arms_with_identical_settings():
    st = _study()
    res = compare_finetuning(st, epochs=3, narf=True)
    lab, narf, pure = res["label_only_result"], res["narf_label_result"], res["narf_result"]
    print(f"base {res['base']:.3f}, label-only {res['label_only']:.3f}, NARF+Label {res['narf_label']:.3f}, "
          f"NARF {res['narf']:.3f}, margin {res['margin']:+.3f} (diagnostic only, 3 epochs)")
    assert len(lab.val_accuracy) == len(narf.val_accuracy) == len(pure.val_accuracy) == 3
    assert lab.best_epoch == int(np.argmax(lab.val_accuracy)) and narf.best_epoch == int(np.argmax(narf.val_accuracy))
    assert max(lab.brain_loss) == 0.0 and narf.brain_loss[-1] < narf.brain_loss[0]
    # pure NARF: the brain loss is its whole training loss (no label term), and it falls
    assert pure.brain_loss == pytest.approx(pure.train_loss) and pure.brain_loss[-1] < pure.brain_loss[0]
    assert res["margin"] == pytest.approx(res["narf_label"] - res["label_only"])


def test_brain_push_points_to_the_side_the_betas_encode():
    """With betas = the correct-side states themselves and an identity encoder, the brain loss pushes every item
    towards its correct side along d; with the sides swapped in the betas, towards the wrong one."""
    st = _study()
    X = last_token_states(st.model, st.tokenizer, st.prompts, kinds=("attention",))["attention"][:, st.layer]
    mu = X.mean(0)
    sigma = np.sqrt(((X - mu) ** 2).sum(1).mean())
    s = np.where(st.labels, 1.0, -1.0)[:, None]
    enc = {st.layer: LinearEncoder(np.eye(X.shape[1]), -mu, np.ones(X.shape[1]))}
    for sign, expected in ((1.0, 1.0), (-1.0, 0.0)):
        Y = (X - mu + sign * 4 * sigma * s * st.direction[None]).astype(np.float32)
        res = brain_push(dataclasses.replace(st, subjects_Y=[Y], encoders=[enc]))
        assert res["agreement_all"] == expected and res["agreement_wrong"] == expected, (sign, res)
        assert res["push"].shape == (len(st.prompts),)


HELD_OUT_WORLDS = (0, 1, 2, 3, 4)


@pytest.mark.slow
def test_narf_label_beats_label_only_on_held_out_generated_problems(run_shared_dir):
    """Issue 9 acceptance: in the planted setting NARF+Label beats label-only on held-out generated problems.

    Recorded here on 2026-11-23 (60 test problems per world): margins +0.217 +0.033 +0.067 +0.117 +0.033, mean +0.093.
    On 2026-12-07 with one torch thread (as in each `make test` worker; the thread count changes the last bits and so
    the training path): +0.267 -0.050 +0.050 +0.117 +0.033, mean +0.083, 4 wins of 5.
    The test asserts the claim with room for a problem or two to flip on another CPU: a positive mean margin and a
    win in at least 4 of the 5 worlds. Worlds 4 and 3 are trained by test_steering_narf_worlds.py on the other
    worker when there is one (``narf_world`` computes each world once per run); here they are read or trained.

    Issue 18 (the suite's time budget): the worlds are now trained 10 epochs with an AdamW step every 8 items
    (``steering_fixtures.NARF_EPOCHS, NARF_ACCUMULATE``; before: 20 epochs, a step every 16 items), the same 120
    optimiser steps at half the forward and backward passes. Recorded on 2026-12-07 with one torch thread (settings
    fixed before worlds 0-4 were run with them): margins +0.217 +0.117 0.000 +0.100 +0.033 (mean +0.093, 4 wins of 5);
    NARF+Label − random fMRI +0.150 +0.050 +0.033 +0.050 +0.100 (mean +0.077, 5 wins); random fMRI − label-only
    +0.067 +0.067 −0.033 +0.050 −0.067 (mean +0.017, 3 wins). The deliberate break (NARF+Label trained on Gaussian
    betas, seed + 50, encoders refitted) fails it: margins +0.133 0.000 0.000 +0.050 −0.050 (2 wins), NARF+Label −
    random fMRI mean −0.007 (2 wins). The numbers below are the first version's (20 epochs).

    Issue 21: the same worlds' random-fMRI arm (NARF+Label on Gaussian betas with each voxel's std, encoders refitted
    on them) is the control. NARF+Label must beat it paired by world: a positive mean paired difference and a win in
    at least 4 of 5 worlds; and the control must not pass the label-only bar above (so that bar is above what the
    brain term reaches without the brain's content). Recorded on 2026-12-07 with one torch thread: random fMRI
    0.700 0.750 0.800 0.550 0.833; NARF+Label − random fMRI +0.217 −0.083 +0.017 +0.133 +0.050 (mean +0.067, 4 wins
    of 5; one-sided paired Wilcoxon p = 5/32 = 0.16: five worlds cannot make it significant at 0.05 unless all five
    win); random fMRI − label-only +0.050 +0.033 +0.033 −0.017 −0.017 (mean +0.017, 3 wins of 5).
    """
    from scipy.stats import wilcoxon

    margins, vs_random, control = [], [], []
    for seed in HELD_OUT_WORLDS:
        res = narf_world(seed, run_shared_dir)
        margins.append(res["margin"])
        vs_random.append(res["narf_label"] - res["random_fmri"])
        control.append(res["random_fmri"] - res["label_only"])
        n = res["n_test"]
        print(f"world {seed}: base {res['base']:.3f}, label-only {res['label_only']:.3f}, NARF+Label "
              f"{res['narf_label']:.3f}, random fMRI {res['random_fmri']:.3f}, margin {res['margin']:+.3f} "
              f"({res['margin'] * n:+.0f} of {n} problems), vs random fMRI {vs_random[-1]:+.3f}")
    wins = sum(m > 0 for m in margins)
    print(f"mean margin {np.mean(margins):+.3f} over {len(margins)} held-out worlds; NARF+Label wins {wins}, "
          f"ties {sum(m == 0 for m in margins)}, loses {sum(m < 0 for m in margins)}")
    assert np.mean(margins) > 0 and wins >= 4, margins
    # the random-fMRI control, paired by world
    wins_r = sum(d > 0 for d in vs_random)
    p = wilcoxon(vs_random, alternative="greater").pvalue if any(vs_random) else 1.0
    print(f"NARF+Label − random fMRI: mean {np.mean(vs_random):+.3f}, wins {wins_r} of {len(vs_random)}, one-sided "
          f"paired Wilcoxon p = {p:.3f}; random fMRI − label-only: mean {np.mean(control):+.3f}, wins "
          f"{sum(c > 0 for c in control)}")
    assert np.mean(vs_random) > 0 and wins_r >= 4, vs_random
    assert not (np.mean(control) > 0 and sum(c > 0 for c in control) >= 4), control  # the bar is above the control
