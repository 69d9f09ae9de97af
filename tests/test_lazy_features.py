"""Features read lazily, one space at a time (issue 19): the cache hands out read-only memory maps, feature spaces
make their row-wise features when a fit needs them, and a run never holds two model spaces' features at once,
with the same tables as spaces given as arrays."""
from __future__ import annotations

import weakref
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from brainalign.brain.recording import Recording
from brainalign.config import load_config
from brainalign.features.store import FeatureStore, StackedEntries
from brainalign.pipeline import runner as pipeline
from brainalign.timing.spaces import build_feature_spaces

from test_config import DEMO


def test_cache_entries_are_read_only_memory_maps_equal_to_the_stored_arrays(tmp_path):
    rng = np.random.default_rng(0)
    stored = rng.standard_normal((5, 3, 4)).astype(np.float32)  # 5 stimuli × 3 layers × 4 dims
    keys = [FeatureStore.key("fp", f"text {i}", [0, 1, 2]) for i in range(5)]
    metas = [dict(text=f"text {i}") for i in range(5)]
    first = FeatureStore(tmp_path).get_or_compute(keys, lambda miss: stored[miss], metas)

    store = FeatureStore(tmp_path)  # a later run: every entry from the cache
    F = store.get_or_compute(keys, lambda miss: pytest.fail(f"recomputed {miss}"), metas)
    assert store.hits == 5 and store.misses == 0
    entry = store.get(keys[2], mmap=True)
    assert isinstance(entry, np.memmap) and not entry.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        entry[0, 0] = 1.0
    np.testing.assert_array_equal(entry, stored[2])
    del entry
    fds = len(list(Path("/proc/self/fd").iterdir())) if Path("/proc/self/fd").is_dir() else None
    assert isinstance(F, StackedEntries) and F.shape == (5, 3, 4) and F.dtype == np.float32
    for got in (F, first):  # the fresh entries are handed out from their files too
        np.testing.assert_array_equal(np.asarray(got), stored)
        np.testing.assert_array_equal(got[:, 1, :], stored[:, 1, :])
        np.testing.assert_array_equal(got[[4, 0]], stored[[4, 0]])
        np.testing.assert_array_equal(got[3], stored[3])
    if fds is not None:  # each read maps its entry and lets it go: no file stays open (10,000s of entries)
        assert len(list(Path("/proc/self/fd").iterdir())) == fds
    # the checksum still guards the memory-mapped read: a flipped byte is reported, not mapped
    npy = store._paths(keys[1])[0]
    raw = bytearray(npy.read_bytes())
    raw[-1] ^= 0xFF
    npy.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="corrupt"):
        assert store.get(keys[1]) is None


def _study(n_stimuli=24, n_layers=4, dim=6, n_runs=4, per_run=40, seed=1):
    """A stimulus design over runs and voxels driven by layer 2 of the stimulus features."""
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((n_stimuli, n_layers, dim)).astype(np.float32)
    n_rows = n_runs * per_run
    design = np.zeros((n_rows, n_stimuli), dtype=np.float32)
    design[np.arange(n_rows), rng.integers(0, n_stimuli, n_rows)] = 1.0
    Y = (design @ F[:, 2, :] @ rng.standard_normal((dim, 10)) + rng.standard_normal((n_rows, 10))).astype(np.float32)
    rec = Recording(data=Y, runs=np.repeat(np.arange(1, n_runs + 1), per_run), tr=2.0, mask_img=None)
    data = pipeline.StudyData(recording=rec, events=None, stimuli=[f"s{i}" for i in range(n_stimuli)], design=design)
    exp = load_config(DEMO)
    exp.analysis.reference = "m/none/L0"
    exp.analysis.n_permutations = 20
    exp.analysis.block_length = 5
    exp.timing.delays = [0]
    exp.timing.pca_components = None
    exp.encoding.alphas = [0.1, 10.0, 1000.0]
    return exp, data, F


def test_model_spaces_are_lazy_and_make_the_same_features(tmp_path):
    exp, data, F = _study()
    meta = {"m": dict(layers=[0, 1, 2, 3], n_layers=4)}
    spaces = build_feature_spaces(data, {"m": {"none": F}}, meta, [SimpleNamespace(name="m")])
    assert all(sp.is_lazy for sp in spaces)
    table = pd.DataFrame([sp.info() for sp in spaces])  # dims without making any X
    assert table["dim"].tolist() == [6] * 4
    for j, sp in enumerate(spaces):
        X = sp.X
        np.testing.assert_array_equal(X, data.design @ F[:, j, :])
        assert X is not sp.X  # made on each access, kept nowhere


def test_a_run_holds_one_space_of_features_at_a_time_with_the_same_tables(tmp_path, monkeypatch):
    exp, data, F = _study()
    made, peak = [], [0]

    def lazily(j):
        def make():
            X = np.asarray(data.design @ F[:, j, :])
            made.append(weakref.ref(X))
            return X
        return make

    lazy = [pipeline.FeatureSpace(f"m/none/L{j}", source=lazily(j), dim=F.shape[2], kind="model", model="m",
                                  prompt="none", layer=j, depth=j / 4) for j in range(4)]
    eager = [pipeline.FeatureSpace(sp.name, data.design @ F[:, j, :], "model", model="m", prompt="none", layer=j,
                                   depth=j / 4) for j, sp in enumerate(lazy)]
    fit = pipeline._fit_arrays

    def spy(*args):
        peak[0] = max(peak[0], sum(ref() is not None for ref in made))
        return fit(*args)

    monkeypatch.setattr(pipeline, "_fit_arrays", spy)
    got = pipeline.cross_validate_statistics(exp, data, lazy)
    assert len(made) == 4 and peak[0] == 1  # each space's X made once (for all its folds), never two at once
    assert all(ref() is None for ref in made)  # and let go afterwards
    want = pipeline.cross_validate_statistics(exp, data, eager)
    pd.testing.assert_frame_equal(got[0], want[0], check_exact=True)
    pd.testing.assert_frame_equal(got[1], want[1], check_exact=True)
    for name in want[2]:
        np.testing.assert_array_equal(got[2][name], want[2][name])
    # the planted layer is found: the comparison is not vacuous
    assert got[0].groupby("space")["mean_r"].mean().idxmax() == "m/none/L2"


def test_partitions_make_only_their_own_spaces_features_one_partition_at_a_time(monkeypatch):
    from brainalign.config import PartitionSpec

    exp, data, F = _study()
    made: dict[str, list] = {}

    def lazily(j):
        def make():
            X = np.asarray(data.design @ F[:, j, :])
            made.setdefault(f"m/none/L{j}", []).append(weakref.ref(X))
            return X
        return make

    spaces = [pipeline.FeatureSpace(f"m/none/L{j}", source=lazily(j), dim=F.shape[2], kind="model", model="m",
                                    prompt="none", layer=j, depth=j / 4) for j in range(4)]
    exp.analysis.partitions = [PartitionSpec(name="p01", spaces=["m/none/L0", "m/none/L1"], dominance=False),
                               PartitionSpec(name="p23", spaces=["m/none/L2", "m/none/L3"], dominance=False)]
    alive = []
    fold = pipeline.partition_fold

    def spy(Xs, *args, **kw):
        alive.append(sorted(name for name, refs in made.items() if any(r() is not None for r in refs)))
        return fold(Xs, *args, **kw)

    monkeypatch.setattr(pipeline, "partition_fold", spy)
    vox, pct = pipeline.partition_spaces(exp, data, spaces)
    assert set(made) == {f"m/none/L{j}" for j in range(4)} and all(len(v) == 1 for v in made.values())
    n_folds = len(alive) // 2
    assert alive == [["m/none/L0", "m/none/L1"]] * n_folds + [["m/none/L2", "m/none/L3"]] * n_folds
    assert set(pct["partition"]) == {"p01", "p23"}
