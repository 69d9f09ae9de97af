"""The pipeline's encoding and statistics stages on planted truth."""
from __future__ import annotations

import nibabel as nib
import numpy as np

from brainalign import pipeline
from brainalign.brain.recording import Recording
from brainalign.config import load_config
from brainalign.testing.planted import planted_encoding

from test_config import DEMO


def _study(sim) -> pipeline.StudyData:
    n_vox = sim.Y.shape[1]
    mask = nib.Nifti1Image(np.ones((n_vox, 1, 1), dtype=np.uint8), np.eye(4))
    rec = Recording(data=sim.Y, runs=sim.runs, tr=2.0, mask_img=mask)
    return pipeline.StudyData(recording=rec, events=None, stimuli=[], design=np.zeros((sim.Y.shape[0], 0)))


def test_planted_effect_is_recovered_and_null_is_not():
    sim = planted_encoding(n_runs=6, n_samples_per_run=120, n_features=10, n_voxels=200, r2=0.2,
                           autocorrelation=0.5, seed=3)
    exp = load_config(DEMO)
    exp.analysis.reference = "null"
    exp.analysis.responsive_fraction = 1.0
    exp.analysis.n_permutations = 500
    exp.timing.delays = [0]
    spaces = [pipeline.FeatureSpace("null", sim.X_null, "baseline"), pipeline.FeatureSpace("true", sim.X, "model")]
    data = _study(sim)
    run_scores, preds, _ = pipeline.cross_validate(exp, data, spaces)
    wide = run_scores.pivot(index="run", columns="space", values="mean_r")
    assert (wide["true"] > wide["null"]).all()

    vox = pipeline.voxel_scores(exp, data, preds)
    true = vox[vox.space == "true"].sort_values("voxel")
    null = vox[vox.space == "null"].sort_values("voxel")
    # planted voxels are found, planted-null voxels mostly are not
    assert true.significant.to_numpy()[sim.informative].mean() > 0.95
    false_pos = true.significant.to_numpy()[~sim.informative].mean()
    assert false_pos <= 0.1
    # the null feature space finds nothing beyond the FDR budget anywhere
    assert null.significant.mean() <= 0.05
    # held-out r in informative voxels is close to the planted sqrt(R2)
    r_inf = true.r.to_numpy()[sim.informative]
    assert abs(np.median(r_inf) - np.sqrt(0.2)) < 0.08


def test_responsive_voxels_use_training_scores_only():
    scores = np.array([[0.1, 0.5, -0.2, np.nan], [0.3, 0.2, 0.0, np.nan]])
    assert pipeline.responsive_voxels(scores, 0.5).tolist() == [0, 1]
    assert pipeline.responsive_voxels(scores[0], 0.25).tolist() == [1]


def test_prepare_design_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)).astype(np.float32)
    runs = np.repeat([0, 1, 2, 3], 10)
    train, test = np.arange(30), np.arange(30, 40)
    Xtr, Xte = pipeline.prepare_design(X, runs, train, test, [0], None)
    X2 = X.copy()
    X2[test] += 100.0  # changing test data must not change the training design
    Xtr2, Xte2 = pipeline.prepare_design(X2, runs, train, test, [0], None)
    np.testing.assert_array_equal(Xtr, Xtr2)
    assert np.allclose(Xtr.mean(0), 0, atol=1e-5) and not np.allclose(Xte2.mean(0), 0)
