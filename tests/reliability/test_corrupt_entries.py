"""Truncated or tampered cache entries (features and encoding checkpoints) are detected by their checksum,
reported, and recomputed; nothing is read with pickle."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.features.store import FeatureStore
from brainalign.pipeline.checkpoint import EncodingCheckpoint, ResumeError, prepare_work_dir, work_dir


def test_truncated_feature_entry_is_detected_and_recomputed(tmp_path):
    store = FeatureStore(tmp_path)
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((3, 2, 5)).astype(np.float32)
    keys = [FeatureStore.key("fp", f"text {i}", [0, 1]) for i in range(3)]
    calls = []

    def compute(missing):
        calls.append(list(missing))
        return truth[missing]

    np.testing.assert_array_equal(store.get_or_compute(keys, compute, [{}] * 3), truth)
    npy = store._paths(keys[1])[0]
    npy.write_bytes(npy.read_bytes()[:-7])  # a crash mid-write on a filesystem without atomic rename
    with pytest.warns(UserWarning, match=r"feature cache entry .* is corrupt \(checksum mismatch\); recomputing"):
        again = store.get_or_compute(keys, compute, [{}] * 3)
    assert calls == [[0, 1, 2], [1]]  # only the damaged entry was recomputed
    np.testing.assert_array_equal(again, truth)
    assert store.get(keys[1]) is not None  # and it is whole again


def test_corrupt_encoding_checkpoint_is_refitted(tmp_path):
    ck = EncodingCheckpoint(tmp_path)
    arrays = dict(P=np.arange(6, dtype=np.float32).reshape(2, 3), best_alphas=np.array([1.0, 10.0, 100.0]))
    fits = []

    def fit():
        fits.append(1)
        return arrays

    ck.fit_or_load("model/prompt/L3", 0, fit)
    got = EncodingCheckpoint(tmp_path).fit_or_load("model/prompt/L3", 0, fit)
    assert len(fits) == 1 and got["P"].dtype == np.float32
    np.testing.assert_array_equal(got["P"], arrays["P"])
    npz = ck._paths("model/prompt/L3", 0)[0]
    npz.write_bytes(npz.read_bytes()[:50])
    ck2 = EncodingCheckpoint(tmp_path)
    with pytest.warns(UserWarning, match=r"encoding checkpoint .* is corrupt .*refitting"):
        ck2.fit_or_load("model/prompt/L3", 0, fit)
    assert len(fits) == 2 and ck2.fitted == [("model/prompt/L3", 0)] and ck2.loaded == []


def test_checkpoints_of_spaces_with_similar_names_do_not_collide(tmp_path):
    ck = EncodingCheckpoint(tmp_path)
    ck.put("a/b", 1, dict(P=np.zeros(1)))
    ck.put("a_b", 1, dict(P=np.ones(1)))
    assert ck.get("a/b", 1)["P"][0] == 0 and ck.get("a_b", 1)["P"][0] == 1
    assert ck.get("a/b", 2) is None


def test_work_dir_refuses_silent_reuse(tmp_path):
    out = tmp_path / "res"
    wd = prepare_work_dir(out, "h1", resume=False, force=False)
    assert wd == work_dir(out) and (wd / "config_hash").read_text().strip() == "h1"
    with pytest.raises(ResumeError, match="pass --resume to continue it"):
        prepare_work_dir(out, "h1", resume=False, force=False)
    with pytest.raises(ResumeError, match="different config"):
        prepare_work_dir(out, "h2", resume=True, force=False)
    (wd / "keep").write_text("x")
    assert (prepare_work_dir(out, "h1", resume=True, force=False) / "keep").exists()
    assert not (prepare_work_dir(out, "h2", resume=False, force=True) / "keep").exists()


def test_checkpoint_fitted_on_other_inputs_is_refitted(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    fits = []

    def fit():
        fits.append(1)
        return dict(P=np.full(2, float(len(fits))))

    EncodingCheckpoint(tmp_path).fit_or_load("s", 0, fit, inputs=(X, np.array([0, 1])))
    same = EncodingCheckpoint(tmp_path)
    assert same.fit_or_load("s", 0, fit, inputs=(X, np.array([0, 1])))["P"][0] == 1 and same.loaded == [("s", 0)]
    changed = EncodingCheckpoint(tmp_path)
    with pytest.warns(UserWarning, match="fitted on other inputs"):
        got = changed.fit_or_load("s", 0, fit, inputs=(X + 1e-6, np.array([0, 1])))
    assert got["P"][0] == 2 and changed.fitted == [("s", 0)]


def test_results_parked_by_a_killed_swap_are_restored(tmp_path):
    from brainalign.cli.main import _recover_swap

    out = tmp_path / "res"
    parked = tmp_path / ".res.old"
    parked.mkdir()
    (parked / "scores.csv").write_text("old results")
    _recover_swap(out)  # killed between "out -> .old" and "new -> out": the old results come back
    assert (out / "scores.csv").read_text() == "old results" and not parked.exists()
    parked.mkdir()
    (parked / "scores.csv").write_text("older")
    _recover_swap(out)  # killed after the swap: the parked copy is stale and goes
    assert (out / "scores.csv").read_text() == "old results" and not parked.exists()


def test_truncated_encoding_chunk_is_detected_and_recomputed(tmp_path):
    """RidgeCV(store=...) keeps one file per voxel chunk with a sha256 sidecar: a damaged chunk is warned about
    and recomputed, the others are read back, and the fit equals an uninterrupted one."""
    from brainalign.encoding import RidgeCV

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5)).astype(np.float32)
    Y = (X @ rng.standard_normal((5, 40)) + rng.standard_normal((60, 40))).astype(np.float32)

    def fit(store=None):
        return RidgeCV(alphas=np.logspace(-1, 3, 5), cv=3, chunk_voxels=16, store=store).fit(X, Y)

    ref, store = fit(), tmp_path / "chunks"
    fit(store)
    chunks = sorted(store.glob("fit_*.npz"))
    assert len(chunks) == 3 and all(c.with_name(c.name + ".sha256").is_file() for c in chunks)
    chunks[1].write_bytes(chunks[1].read_bytes()[:-9])
    with pytest.warns(UserWarning, match=r"encoding chunk .*fit_.* is corrupt \(checksum mismatch\); recomputing"):
        again = fit(store)
    assert again.store_.n_loaded == 2  # the intact chunks were read back, not refitted
    for name in ("coef_", "best_alphas_", "cv_scores_"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ref, name))
    assert len(list(store.glob("*.npz.sha256"))) == 3  # the damaged chunk is whole again
