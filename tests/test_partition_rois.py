"""Variance partitions per ROI and their asymmetry over subjects (methods.md §10 row 2: the LAM's action prompt keeps
unique variance, its reasoning prompt none, strongest in frontal-motor cortex), on a planted miniature."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign import pipeline
from brainalign.analysis.group import group_partition_table, partition_asymmetry_table
from brainalign.config import PartitionSpec
from brainalign.pipeline.partitions import partition_roi_table

from test_pipeline_analyses import _exp, _study

N_VOX = 40
ROIS = {"motor": np.arange(N_VOX) < 20, "visual": np.arange(N_VOX) >= 20}


def _subject(seed: int, n_runs: int = 4, per_run: int = 100, k: int = 3):
    """'action' = unique block A + shared block S, 'reasoning' = unique block R + S (random mixtures). Motor voxels
    read A and S; visual voxels read S only; R drives nothing."""
    rng = np.random.default_rng(seed)
    n = n_runs * per_run
    A, R, S = (rng.standard_normal((n, k)) for _ in range(3))
    mix = lambda *blocks: np.hstack(blocks) @ np.linalg.qr(rng.standard_normal((2 * k, 2 * k)))[0]  # noqa: E731
    spaces = [pipeline.FeatureSpace("M/action/L1", mix(A, S).astype(np.float32), "model"),
              pipeline.FeatureSpace("M/reasoning/L1", mix(R, S).astype(np.float32), "model")]
    Y = rng.standard_normal((n, N_VOX)) * 1.2
    Y[:, ROIS["motor"]] += A @ rng.standard_normal((k, 20)) * 0.5 + S @ rng.standard_normal((k, 20)) * 0.3
    Y[:, ROIS["visual"]] += S @ rng.standard_normal((k, 20)) * 0.5
    runs = np.repeat(np.arange(n_runs), per_run)
    return _study(Y.astype(np.float32), runs), spaces


def test_unique_variance_asymmetry_is_found_in_the_planted_roi_only():
    exp = _exp(partitions=[PartitionSpec(name="M-action-vs-reasoning", spaces=["M/action/L1", "M/reasoning/L1"],
                                         dominance=False)])
    stacked = []
    for s in range(5):
        data, spaces = _subject(s)
        vox, pct = pipeline.partition_spaces(exp, data, spaces)
        rois = partition_roi_table(vox, pct, exp.analysis.partitions, ROIS)
        stacked.append(rois.assign(subject=f"{s:02d}"))
    stacked = pd.concat(stacked, ignore_index=True)
    one = stacked[(stacked.subject == "00") & (stacked.aggregation == "ratio_of_means")].set_index(["roi", "part"])
    assert one.loc[("motor", "unique_s0"), "space"] == "M/action/L1"
    assert one.loc[("visual", "shared"), "percent"] > 60  # visual voxels read the shared block only

    asym = partition_asymmetry_table(stacked).set_index("roi")
    assert (asym["a"] == "M/action/L1").all() and (asym["b"] == "M/reasoning/L1").all() and (asym["n"] == 5).all()
    motor, visual = asym.loc["motor"], asym.loc["visual"]
    assert motor["mean_a"] > 50 and abs(motor["mean_b"]) < 8  # % of the joint R²: ~78 % vs ~0 on this seed
    assert motor["n_better"] == 5 and motor["p_t"] < 0.001
    assert abs(visual["mean_diff"]) < 8 and visual["p_t"] > 0.01

    group = group_partition_table(stacked)
    g = group[group.aggregation == "ratio_of_means"].set_index(["roi", "part"])
    assert (g["n_subjects"] == 5).all()
    assert g.loc[("motor", "unique_s0"), "percent"] == pytest.approx(motor["mean_a"])
    assert list(dict.fromkeys(group["roi"])) == ["motor", "visual"]  # input order kept for the figure
