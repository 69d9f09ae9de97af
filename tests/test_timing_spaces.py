"""Feature spaces on the TR grid (timing/spaces.py) and the train-only PCA (timing/grid.py): names, contents, the
category-shuffled control, relative layer names, and PCA against the covariance eigenvectors."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from brainalign.config.experiment import AnalysisSpec, PartitionSpec
from brainalign.stimuli.events import stimulus_design
from brainalign.timing.grid import TrainPCA
from brainalign.timing.spaces import (
    FeatureSpace, LAYER_PLACEHOLDER, baseline_space_name, build_feature_spaces, resolve_space_name, resolved_names,
    shuffled_design, space_name, unknown_space_hint,
)


def _data(n_runs=3, n_blocks=6, tr=2.0):
    """Blocked design: each run shows the stimuli a..f once, 2 TRs each, in a run-specific order."""
    stimuli = list("abcdef")
    rng = np.random.default_rng(0)
    rows, runs = [], []
    for r in range(n_runs):
        for k, s in enumerate(rng.permutation(stimuli)[:n_blocks]):
            rows.append(dict(run=r, onset=k * 2 * tr, duration=2 * tr, stimulus=s))
        runs += [r] * (2 * n_blocks + 2)
    ev = pd.DataFrame(rows)
    runs = np.asarray(runs)
    design = stimulus_design(ev, runs, tr, stimuli)
    return SimpleNamespace(events=ev, recording=SimpleNamespace(runs=runs, tr=tr), stimuli=stimuli, design=design)


def test_space_names_follow_the_one_rule():
    assert space_name("M", "p", 3) == "M/p/L3"
    assert space_name("M", "p", np.int64(3)) == space_name("M", "p", 3.0) == "M/p/L3"
    assert space_name("M", "p", LAYER_PLACEHOLDER) == "M/p/L<layer>"
    assert baseline_space_name("onoff") == "baseline/onoff"


def test_unknown_space_hint_names_the_closest_space_or_nothing():
    known = ["M/action/L3", "M/percept/L3", "baseline/onoff"]
    assert unknown_space_hint("M/acton/L3", known) == "did you mean 'M/action/L3'? "
    assert unknown_space_hint("zzzzzz", known) == ""


def test_build_feature_spaces_maps_stimulus_features_through_the_design():
    data = _data()
    rng = np.random.default_rng(1)
    F = {"M": {"p": rng.standard_normal((6, 3, 4)), "q": rng.standard_normal((6, 3, 4))},
         "N": {"p": rng.standard_normal((6, 2, 5))}}
    meta = {"M": dict(layers=[1, 3, 6], n_layers=6), "N": dict(layers=[2, 4], n_layers=4)}
    models = [SimpleNamespace(name="N"), SimpleNamespace(name="M")]  # config order, not dict order
    spaces = build_feature_spaces(data, F, meta, models, baselines=["onoff", "category", "category_shuffled"], seed=7)
    assert [s.name for s in spaces] == ["N/p/L2", "N/p/L4", "M/p/L1", "M/p/L3", "M/p/L6", "M/q/L1", "M/q/L3", "M/q/L6",
                                        "baseline/onoff", "baseline/category", "baseline/category_shuffled"]
    sp = spaces[6]  # M/q/L3
    np.testing.assert_allclose(sp.X, data.design @ F["M"]["q"][:, 1, :])
    assert sp.info() == dict(space="M/q/L3", kind="model", model="M", prompt="q", layer=3, depth=0.5, dim=4)
    assert spaces[1].depth == 1.0 and spaces[0].layer == 2
    onoff, cat, shuf = spaces[-3:]
    assert all(b.kind == "baseline" and b.model == "" and b.prompt == "" and b.layer == -1 and np.isnan(b.depth)
               for b in (onoff, cat, shuf))
    np.testing.assert_array_equal(onoff.X, data.design.sum(1, keepdims=True))
    np.testing.assert_array_equal(cat.X, data.design)
    np.testing.assert_array_equal(shuf.X, shuffled_design(data, 7))
    assert not np.array_equal(shuf.X, shuffled_design(data, 8))
    assert [s.name for s in build_feature_spaces(data, F, meta, models[:1])] == ["N/p/L2", "N/p/L4"]


def test_shuffled_design_keeps_each_runs_timing_and_stimuli_but_swaps_them():
    data = _data()
    D = shuffled_design(data, 0)
    np.testing.assert_array_equal(D, shuffled_design(data, 0))
    runs = data.recording.runs
    np.testing.assert_allclose(D.sum(1), data.design.sum(1))  # block timing unchanged
    for r in np.unique(runs):  # each run shows the same stimuli for as long as before
        np.testing.assert_allclose(D[runs == r].sum(0), data.design[runs == r].sum(0))
    assert not np.array_equal(D, data.design)
    assert data.events.equals(_data().events)  # the study's events are not modified


def _table():
    spaces = [FeatureSpace(f"M/p/L{k}", np.zeros((2, 1)), "model", "M", "p", k, k / 8) for k in (2, 4, 8)]
    spaces += [FeatureSpace("M/q/L5", np.zeros((2, 1)), "model", "M", "q", 5, 5 / 8),
               FeatureSpace("baseline/onoff", np.zeros((2, 1)), "baseline")]
    return spaces


@pytest.mark.parametrize("as_table", [False, True])
def test_resolve_space_name_counts_layers_from_the_end(as_table):
    spaces = _table()
    spaces = pd.DataFrame([s.info() for s in spaces]) if as_table else spaces
    assert resolve_space_name("M/p/L-1", spaces) == "M/p/L8"
    assert resolve_space_name("M/p/L-3", spaces) == "M/p/L2"
    assert resolve_space_name("M/q/L-1", spaces) == "M/q/L5"
    assert resolve_space_name("M/p/L-4", spaces) == "M/p/L-4"  # beyond the depth: left for the check to name
    assert resolve_space_name("X/p/L-1", spaces) == "X/p/L-1"
    assert resolve_space_name("M/p/L4", spaces) == "M/p/L4"
    assert resolve_space_name("baseline/onoff", spaces) == "baseline/onoff"


def test_resolve_space_name_ignores_baselines_with_the_same_stem():
    spaces = _table() + [FeatureSpace("M/p/L9", np.zeros((2, 1)), "baseline", "M", "p", 9)]
    assert resolve_space_name("M/p/L-1", spaces) == "M/p/L8"


def test_resolved_names_resolves_reference_and_partitions():
    an = AnalysisSpec(reference="M/p/L-1", partitions=[PartitionSpec(name="x", spaces=["M/q/L-1", "baseline/onoff"])])
    new = resolved_names(an, _table())
    assert new.reference == "M/p/L8" and new.partitions[0].spaces == ["M/q/L5", "baseline/onoff"]
    assert an.reference == "M/p/L-1"  # the config is not modified
    fixed = AnalysisSpec(reference="M/p/L8")
    assert resolved_names(fixed, _table()) is fixed


def test_train_pca_axes_are_the_covariance_eigenvectors():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 6)) @ np.diag([5, 4, 3, 2, 1, 0.5]) + 10.0  # not centred
    pca = TrainPCA(3).fit(X)
    w, v = np.linalg.eigh(np.cov(X, rowvar=False))  # the reference: eigenvectors of the centred covariance
    ref = v[:, np.argsort(w)[::-1][:3]].T
    signs = np.sign((pca.components_ * ref).sum(1))
    np.testing.assert_allclose(pca.components_ * signs[:, None], ref, atol=1e-10)
    Z = pca.transform(X)
    assert Z.dtype == np.float32 and Z.shape == (40, 3)
    np.testing.assert_allclose(Z, X @ pca.components_.T, rtol=1e-6)
    assert TrainPCA(10).fit(X[:4]).components_.shape == (3, 6)  # at most n_rows - 1 non-zero axes


def test_train_pca_drops_rounding_noise_axes():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 2)) @ rng.standard_normal((2, 5))  # rank 2 in 5 columns
    assert TrainPCA(5).fit(X).components_.shape == (2, 5)
    Xn = X + 1e-9 * rng.standard_normal(X.shape)  # below rtol=1e-6 of the largest singular value
    assert TrainPCA(5).fit(Xn).components_.shape == (2, 5)
    assert TrainPCA(5, rtol=1e-12).fit(Xn).components_.shape == (5, 5)
    assert TrainPCA(5).fit(X + 1e-3 * rng.standard_normal(X.shape)).components_.shape == (5, 5)
    assert TrainPCA(3).fit(np.ones((6, 3))).components_.shape == (1, 3)  # constant rows: one axis kept


def test_train_pca_is_scale_invariant_and_works_on_one_column():
    rng = np.random.default_rng(4)
    basis = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    X = (rng.standard_normal((30, 5)) * [1.0, 1e-3, 1e-8, 0, 0]) @ basis  # singular values ~1 : 1e-3 : 1e-8
    for scale in (1e-4, 1.0, 1e6):  # rtol is relative to the largest singular value
        assert TrainPCA(5).fit(X * scale).components_.shape == (2, 5), scale
    assert TrainPCA(1).fit(rng.standard_normal((6, 1))).components_.shape == (1, 1)
    X32 = rng.standard_normal((20, 4)).astype(np.float32)  # computed in float64 whatever the input
    np.testing.assert_array_equal(TrainPCA(2).fit(X32).components_, TrainPCA(2).fit(X32.astype(np.float64)).components_)


def test_build_feature_spaces_default_seed_and_names_with_two_l_marks():
    data = _data()
    spaces = build_feature_spaces(data, {}, {}, [], baselines=["category_shuffled"])
    np.testing.assert_array_equal(spaces[0].X, shuffled_design(data, 0))
    sp = [FeatureSpace(f"M/Look/L{k}", np.zeros((2, 1)), "model", "M", "Look", k) for k in (1, 5)]
    assert resolve_space_name("M/Look/L-1", sp) == "M/Look/L5"
    assert resolve_space_name("M/p/L1", _table()) == "M/p/L1"  # an unfitted absolute layer is left for the check


def test_frame_baselines_are_kind_baseline_and_resolve_by_their_one_layer():
    """Spaces of ``kind: baseline`` models (pixels, RL regressors) are kind 'baseline' in the tables, so the model
    summaries (layer curves, best layer, ROI peaks) leave them out; 'Pixels/none/L-1' still names their layer."""
    data = _data()
    F = np.ones((len(data.stimuli), 1, 2), dtype=np.float32)
    models = [SimpleNamespace(name="Pixels", kind="baseline"), SimpleNamespace(name="M", kind="multimodal")]
    meta = {"Pixels": dict(layers=[0], n_layers=1), "M": dict(layers=[0], n_layers=1)}
    spaces = build_feature_spaces(data, {"Pixels": {"none": F}, "M": {"none": F}}, meta, models)
    assert [(sp.name, sp.kind) for sp in spaces] == [("Pixels/none/L0", "baseline"), ("M/none/L0", "model")]
    assert resolve_space_name("Pixels/none/L-1", spaces) == "Pixels/none/L0"
