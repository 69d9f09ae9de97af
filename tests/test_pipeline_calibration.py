"""The statistics stage of the pipeline is calibrated on an autocorrelated null.

The bare block-permutation test is checked in ``tests/analysis/test_stats.py``; this test checks the call the
pipeline makes (:func:`brainalign.pipeline.voxel_scores` with the experiment's ``analysis`` section), so a block
length that never reaches the permutation test, or a plain shuffle, fails here.
"""
from __future__ import annotations

import numpy as np
import pytest

from brainalign import pipeline
from brainalign.brain.recording import Recording
from brainalign.config import load_config
from brainalign.study.data import StudyData
from brainalign.testing.planted import _ar1

from test_config import DEMO

N_RUNS, PER_RUN, N_VOXELS = 4, 150, 3000


@pytest.fixture(scope="module")
def null_study():
    rng = np.random.default_rng(7)
    runs = np.repeat(np.arange(N_RUNS), PER_RUN)
    Y = _ar1(rng, (runs.size, N_VOXELS), runs, 0.5).astype(np.float32)
    P = _ar1(rng, (runs.size, N_VOXELS), runs, 0.5).astype(np.float32)  # predictions unrelated to the data
    rec = Recording(data=Y, runs=runs, tr=2.0, mask_img=None)
    return StudyData(rec, None, ["x"], np.zeros((runs.size, 1))), {"model/none/L0": P}


def _voxel_fpr(null_study, block_length: int) -> float:
    data, predictions = null_study
    exp = load_config(DEMO)
    exp = exp.model_copy(update=dict(analysis=exp.analysis.model_copy(update=dict(
        n_permutations=200, block_length=block_length, fwer_alpha=None))))
    table = pipeline.voxel_scores(exp, data, predictions)
    assert len(table) == N_VOXELS and table["p"].notna().all()
    return float(np.mean(table["p"] < 0.05))


def test_voxel_false_positive_rate_is_nominal_with_blocks_and_inflated_without(null_study):
    blocked = _voxel_fpr(null_study, block_length=10)
    assert abs(blocked - 0.05) <= 0.015, blocked
    plain = _voxel_fpr(null_study, block_length=1)  # the control: autocorrelation ignored
    assert plain > 0.065, plain
