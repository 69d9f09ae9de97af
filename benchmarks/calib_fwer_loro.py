"""Calibration (not timing): false positives of the voxel permutation test on a planted-null feature space.

The pipeline scores the held-out predictions of every outer fold concatenated (leave-one-run-out: each test
run's prediction is fitted on the other test runs) or of one fixed split. This script measures, on planted data
whose responses share low-rank structure (:func:`brainalign.testing.planted.planted_encoding`), the false positives of
the *null* feature space (independent of the responses) under both schemes, and under a random readout of the
same features (no weights fitted) as the reference case:

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/calib_fwer_loro.py [n_seeds]

prints, per scheme, the share of seeds with any family-wise (max-statistic) rejection at 0.05 (nominal 0.05)
and the mean per-voxel rate of p < 0.05 (nominal 0.05).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

import brainalign
from brainalign import pipeline
from brainalign.analysis.stats import permutation_test
from brainalign.brain.recording import Recording
from brainalign.config import load_config
from brainalign.testing.planted import planted_encoding

DEMO = str(Path(brainalign.__file__).parent / "configs" / "demo.yaml")


def main(n_seeds: int = 30) -> None:
    exp = load_config(DEMO)
    exp.timing.delays, exp.timing.pca_components = [0], None
    exp.encoding.alphas = [1.0, 10.0, 100.0, 1000.0]
    exp.analysis.reference, exp.analysis.responsive_fraction, exp.analysis.controls = "null", 1.0, None
    stats = {"leave-one-run-out": [[], []], "fixed split (runs 4, 5)": [[], []]}
    for seed in range(100, 100 + n_seeds):
        sim = planted_encoding(n_runs=6, n_samples_per_run=100, n_features=8, n_voxels=150, r2=0.25,
                               autocorrelation=0.4, seed=seed)
        mask = nib.Nifti1Image(np.ones((150, 1, 1), dtype=np.uint8), np.eye(4))
        data = pipeline.StudyData(Recording(data=sim.Y, runs=sim.runs, tr=2.0, mask_img=mask), None, [],
                                  np.zeros((sim.Y.shape[0], 0)))
        for scheme, outer in zip(stats, ("leave-one-run-out", [4, 5])):
            exp.encoding.outer_cv = outer
            _, preds, _ = pipeline.cross_validate(exp, data, [pipeline.FeatureSpace("null", sim.X_null, "baseline")])
            held = np.isfinite(preds["null"]).all(1)
            _, p, pf = permutation_test(sim.Y[held], preds["null"][held], sim.runs[held], 10, 200,
                                        return_fwer=True, seed=seed + 7)
            stats[scheme][0].append((pf < 0.05).any())
            stats[scheme][1].append((p < 0.05).mean())
        # the same test runs and features, but a random readout (no weights fitted on the training responses)
        test = sim.runs >= 4
        P = sim.X_null[test] @ np.random.default_rng(seed + 1).standard_normal((8, 150))
        _, p, pf = permutation_test(sim.Y[test], P, sim.runs[test], 10, 200, return_fwer=True, seed=seed + 7)
        stats.setdefault("random readout (no fit)", [[], []])
        stats["random readout (no fit)"][0].append((pf < 0.05).any())
        stats["random readout (no fit)"][1].append((p < 0.05).mean())
    for scheme, (fwer, rate) in stats.items():
        print(f"{scheme:26s} FWER {np.mean(fwer):.3f} (nominal 0.05, {n_seeds} seeds)   "
              f"per-voxel p<0.05 rate {np.mean(rate):.3f} (nominal 0.05)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
