"""The simulators plant what they say they plant."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.testing.planted import planted_encoding, planted_partition


def test_planted_encoding_unchanged_contract():
    sim = planted_encoding(n_runs=3, n_samples_per_run=50, n_voxels=20, seed=1)
    assert sim.Y.shape == (150, 20) and sim.X.shape == (150, 20)
    assert np.all(sim.r2_true[~sim.informative] == 0)


def test_partition_fractions_and_spaces():
    sim = planted_partition(("a", "b", "c"), n_runs=4, n_samples_per_run=2000, n_latent=2, n_voxels=50, seed=0)
    assert set(sim.fractions) == {"unique_a", "unique_b", "unique_c", "shared_a_b", "shared_a_c",
                                  "shared_b_c", "shared_a_b_c"}
    total = sum(sim.fractions.values())
    assert np.all(total[sim.null] == 0) and np.all((total[~sim.null] >= 0.3) & (total[~sim.null] <= 0.6))
    # each space holds 2 latents per block it belongs to: a is in 4 of the 7 blocks
    assert sim.spaces["a"].shape == (8000, 8)
    # the population R2 of the full latent model equals the planted total (OLS on all spaces, big n)
    X = np.hstack(list(sim.spaces.values()))
    coef, *_ = np.linalg.lstsq(X, sim.Y - sim.Y.mean(0), rcond=None)
    r2 = 1 - ((sim.Y - sim.Y.mean(0) - X @ coef) ** 2).sum(0) / ((sim.Y - sim.Y.mean(0)) ** 2).sum(0)
    assert np.median(np.abs(r2 - total)) < 0.02


def test_partition_two_spaces_named_shared_and_seeded():
    s1 = planted_partition(("x", "y"), n_runs=2, n_samples_per_run=30, n_voxels=5, seed=3)
    s2 = planted_partition(("x", "y"), n_runs=2, n_samples_per_run=30, n_voxels=5, seed=3)
    assert set(s1.fractions) == {"unique_x", "unique_y", "shared"}
    np.testing.assert_array_equal(s1.Y, s2.Y)
    with pytest.raises(ValueError, match="names"):
        planted_partition(("x",))


def test_layers_hierarchy_subjects_simulators():
    from brainalign.testing.planted import planted_hierarchy, planted_layers, planted_subjects

    lay = planted_layers({"x": 0, "y": 3}, n_layers=4, n_runs=2, n_samples_per_run=20, n_voxels_per_roi=5)
    assert len(lay.layers) == 4 and lay.Y.shape == (40, 10) and lay.masks["y"].sum() == 5
    with pytest.raises(ValueError, match="outside"):
        planted_layers({"x": 9}, n_layers=4)
    h = planted_hierarchy({"low": 0.0, "high": 0.5}, n_subjects=3, voxel_noise=0.0, subject_noise=0.0)
    gain = h.prompted - h.baseline
    assert np.allclose(gain[:, h.masks["low_roi0"]], 0.0) and np.allclose(gain[:, h.masks["high_roi1"]], 0.5)
    s = planted_subjects(n_subjects=3, n_runs=2, n_samples_per_run=4000, n_voxels=5, seed=0)
    # each subject's correlation with the shared signal is the planted ceiling
    r01 = [np.corrcoef(s.responses[0][:, v], s.responses[1][:, v])[0, 1] for v in range(5)]
    np.testing.assert_allclose(r01, s.signal_fraction, atol=0.05)  # corr between two subjects = f
