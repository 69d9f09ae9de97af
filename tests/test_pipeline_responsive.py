"""Responsive voxels come from the reference model's inner cross-validation on the training runs.

For each held-out run, ``mean_r_responsive`` must be the mean held-out r over the voxels that the reference space,
fitted on that fold's training runs alone, explains best in its inner leave-one-run-out CV. The data are built so
that choosing by held-out scores picks other voxels: a second group of voxels follows the features strongly only in
the last run.
"""
from __future__ import annotations

import nibabel as nib
import numpy as np

from brainalign import pipeline
from brainalign.analysis.metrics import pearson_r
from brainalign.config import load_config
from brainalign.brain.recording import Recording
from brainalign.encoding import RidgeCV
from brainalign.encoding.splits import leave_one_run_out

from test_config import DEMO

N_RUNS, PER_RUN, N_VOX = 5, 80, 80


def _study():
    rng = np.random.default_rng(0)
    runs = np.repeat(np.arange(N_RUNS), PER_RUN)
    X = rng.standard_normal((runs.size, 4)).astype(np.float32)
    W = rng.standard_normal((4, N_VOX))
    gain = np.zeros((runs.size, N_VOX))
    gain[:, :20] = 0.6                       # follow the features in every run
    gain[:, 20:40] = 0.05                    # ... barely, except in the last run
    gain[runs == N_RUNS - 1, 20:40] = 1.5
    Y = (gain * (X @ W) + rng.standard_normal((runs.size, N_VOX))).astype(np.float32)
    mask = nib.Nifti1Image(np.ones((N_VOX, 1, 1), dtype=np.uint8), np.eye(4))
    rec = Recording(data=Y, runs=runs, tr=2.0, mask_img=mask)
    return X, pipeline.StudyData(recording=rec, events=None, stimuli=[], design=np.zeros((runs.size, 0)))


def test_responsive_voxels_are_chosen_by_the_reference_on_training_runs_only():
    X, data = _study()
    Y, runs = data.recording.data, data.recording.runs
    exp = load_config(DEMO)
    exp.analysis.reference = "ref"
    exp.analysis.responsive_fraction = 0.25
    exp.timing.delays = [0]
    exp.timing.pca_components = None
    spaces = [pipeline.FeatureSpace("ref", X, "baseline"), pipeline.FeatureSpace("other", X[:, :2].copy(), "model")]
    run_scores, preds, _ = pipeline.cross_validate(exp, data, spaces)

    n_sel = int(round(0.25 * N_VOX))
    differs = 0
    for run in range(N_RUNS):
        train, test = np.flatnonzero(runs != run), np.flatnonzero(runs == run)
        Xtr, _ = pipeline.prepare_design(X, runs, train, test, [0], None)
        ref = RidgeCV(alphas=exp.encoding.alphas, cv=leave_one_run_out(runs[train]), fit_intercept=False).fit(Xtr, Y[train])
        chosen = np.argsort(-np.asarray(ref.cv_scores_), kind="stable")[:n_sel]
        for space in ("ref", "other"):
            r = pearson_r(Y[test], preds[space][test])
            row = run_scores[(run_scores.space == space) & (run_scores.run == run)].iloc[0]
            assert row.n_responsive == n_sel
            np.testing.assert_allclose(row.mean_r_responsive, np.mean(r[chosen]), rtol=1e-6)
            by_held_out = np.argsort(-r, kind="stable")[:n_sel]
            differs += set(by_held_out) != set(chosen)
    assert differs >= 2  # choosing by held-out scores would give other numbers on these data
