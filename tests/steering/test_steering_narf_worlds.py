"""The held-out planted fine-tuning worlds 4 and 3, trained here so that a second pytest-xdist worker shares the
acceptance test's work (test_steering_narf_planted.py reads them from the run's shared folder).

What is asserted here is what each world's two arms must show whatever the margin: the label-only arm carries no
brain loss, the NARF+Label arm's brain loss falls, the random-fMRI arm carries one, and each arm keeps its best validation
epoch.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("peft")

from steering_fixtures import NARF_EPOCHS, narf_world


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 3])
def test_held_out_world_trains_both_arms(seed, run_shared_dir):
    res = narf_world(seed, run_shared_dir)
    lab, narf, rnd = res["arms"]["label_only"], res["arms"]["narf_label"], res["arms"]["random_fmri"]
    assert res["n_labelled"] == 8 and res["n_fmri"] == 96 and res["n_test"] == 60
    assert max(lab["brain_loss"]) == 0.0
    assert narf["brain_loss"][-1] < narf["brain_loss"][0]
    assert min(rnd["brain_loss"]) > 0.0  # the control carries a brain term too
    for arm in (lab, narf, rnd):
        assert len(arm["val_accuracy"]) == NARF_EPOCHS and arm["best_epoch"] == int(np.argmax(arm["val_accuracy"]))
    assert res["margin"] == pytest.approx(res["narf_label"] - res["label_only"])
    assert all(0.0 <= res[k] <= 1.0 for k in ("base", "label_only", "narf_label", "random_fmri"))
