"""Instruction-semantics coupling and matched-dimensionality comparison."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.decomposition import PCA

from brainalign.analysis.compare import (
    instruction_semantics_coupling,
    match_dimensionality,
    matched_dimensionality_scores,
    similarity_matrix,
)
from brainalign.testing.planted import planted_encoding


def _instructions(coupled: bool, seed=0):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((13, 32))  # 13 instructions (the video-audio study's video set)
    if coupled:  # maps are a noisy linear readout of the instruction semantics
        maps = emb @ rng.standard_normal((32, 500)) + 3.0 * rng.standard_normal((13, 500))
    else:
        maps = rng.standard_normal((13, 500))
    return emb, maps


def test_coupling_found_when_planted_and_not_otherwise():
    emb, maps = _instructions(True)
    res = instruction_semantics_coupling(emb, maps, n_permutations=2000)
    assert res["r"] > 0.5 and res["p_value"] < 0.001
    emb, maps = _instructions(False)
    res0 = instruction_semantics_coupling(emb, maps, n_permutations=2000)
    assert abs(res0["r"]) < 0.3 and res0["p_value"] > 0.05


def test_coupling_matches_scipy_on_upper_triangles():
    emb, maps = _instructions(True, seed=1)
    St, Sm = similarity_matrix(emb, "cosine"), similarity_matrix(maps, "pearson")
    iu = np.triu_indices(13, 1)
    s = instruction_semantics_coupling(emb, maps, method="spearman", n_permutations=10)
    p = instruction_semantics_coupling(emb, maps, method="pearson", n_permutations=10)
    assert s["r"] == pytest.approx(spearmanr(St[iu], Sm[iu]).statistic, abs=1e-10)
    assert p["r"] == pytest.approx(pearsonr(St[iu], Sm[iu]).statistic, abs=1e-10)
    assert s["n_pairs"] == 78
    np.testing.assert_allclose(Sm, np.corrcoef(maps), atol=1e-10)


def test_pca_is_fit_on_training_runs_only():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((100, 20)), rng.standard_normal((100, 8))
    train = np.arange(70)
    out = match_dimensionality({"a": a, "b": b}, train)
    assert out["a"].shape == (100, 8) and out["b"].shape == (100, 8)  # k = smallest space
    ref = PCA(8, svd_solver="full").fit(a[:70]).transform(a)
    np.testing.assert_allclose(np.abs(out["a"]), np.abs(ref), atol=1e-4)
    a2 = a.copy()
    a2[70:] *= 100  # changing the test rows must not change the basis
    out2 = match_dimensionality({"a": a2, "b": b}, train)
    np.testing.assert_allclose(out2["a"][:70], out["a"][:70], atol=1e-4)


def test_matched_dimensionality_model_comparison():
    sim = planted_encoding(n_runs=5, n_samples_per_run=100, n_features=20, n_voxels=60, r2=0.4, seed=0)
    rng = np.random.default_rng(1)
    wide_null = rng.standard_normal((500, 200))  # many more dimensions but no signal
    df = matched_dimensionality_scores({"model": sim.X, "null": wide_null}, sim.Y, sim.runs, 4, n_components=10, n_folds=2)
    assert set(df["n_components"]) == {10}
    inf = sim.informative
    r_model = df.loc[df.model == "model", "r"].to_numpy()
    r_null = df.loc[df.model == "null", "r"].to_numpy()
    assert np.median(r_model[inf] - r_null[inf]) > 0.3
    assert abs(np.median(r_null)) < 0.1


def test_bad_inputs():
    with pytest.raises(ValueError, match="one row per instruction"):
        instruction_semantics_coupling(np.zeros((5, 3)), np.zeros((6, 10)))
    with pytest.raises(ValueError, match="at least 4 instructions"):
        instruction_semantics_coupling(np.ones((3, 3)), np.ones((3, 10)))
    with pytest.raises(ValueError, match="n_components"):
        match_dimensionality({"a": np.ones((10, 3))}, np.arange(8), n_components=5)
    with pytest.raises(ValueError, match="zero variance"):
        match_dimensionality({"a": np.ones((10, 3))}, np.arange(8), n_components=2)
    with pytest.raises(ValueError, match="zero variance"):
        similarity_matrix(np.vstack([np.zeros(4), np.ones(4)]), "pearson")
