"""Voxel statistics computed as each feature space's folds finish equal the statistics over every space's kept
predictions (bit for bit), and only one space's predictions exist at any time.

Miniature studies: tests/test_study_gameplay.py and tests/test_study_nsd.py assert the same equality on their data.
"""
from __future__ import annotations

import weakref
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.brain.recording import Recording
from brainalign.config import RoiSpec, load_config
from brainalign.encoding import held_out
from brainalign.pipeline import runner as pipeline, space_statistics
from brainalign.testing.planted import planted_layers

from streaming_parity import assert_streamed_equals_kept_whole
from test_config import DEMO

N_VOX = 12  # voxels per ROI


def _planted(tmp_path, outer_cv, n_permutations=40):
    sim = planted_layers(peaks={"V1": 0, "MT": 2}, n_layers=3, n_runs=4, n_samples_per_run=60, n_voxels_per_roi=N_VOX,
                         n_latent=3, seed=3)
    n_vox = sim.Y.shape[1]
    labels = np.repeat([1, 2], n_vox // 2)
    mask = nib.Nifti1Image(np.ones((n_vox, 1, 1), dtype=np.uint8), np.eye(4))
    nib.save(nib.Nifti1Image(labels.reshape(n_vox, 1, 1).astype(np.int16), np.eye(4)), tmp_path / "atlas.nii.gz")
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\tV1\n2\tMT\n")
    exp = load_config(DEMO)
    exp.brain.rois = RoiSpec(image=str(tmp_path / "atlas.nii.gz"), table=str(tmp_path / "atlas.tsv"))
    exp.analysis.reference = "baseline/noise"
    exp.analysis.n_permutations = n_permutations
    exp.analysis.block_length = 5
    exp.analysis.fwer_alpha = 0.05
    exp.timing.delays = [0]
    exp.timing.pca_components = None
    exp.encoding.alphas = [0.1, 10.0, 1000.0]
    exp.encoding.outer_cv = outer_cv
    rng = np.random.default_rng(0)
    spaces = [pipeline.FeatureSpace(f"m/none/L{k}", X, "model", model="m", prompt="none", layer=k, depth=k / 2)
              for k, X in enumerate(sim.layers)]
    spaces.append(pipeline.FeatureSpace("baseline/noise", rng.standard_normal((sim.Y.shape[0], 3)).astype(np.float32),
                                        "baseline"))
    rec = Recording(data=sim.Y, runs=sim.runs, tr=2.0, mask_img=mask)
    data = pipeline.StudyData(recording=rec, events=None, stimuli=[], design=np.zeros((sim.Y.shape[0], 0)))
    return exp, data, spaces, pipeline.load_roi_masks(exp, rec)


@pytest.mark.parametrize("outer_cv", ["leave-one-run-out", [1, 3]], ids=["every-run-held-out", "two-test-runs"])
def test_streamed_statistics_equal_the_statistics_of_all_kept_predictions(tmp_path, monkeypatch, outer_cv):
    exp, data, spaces, masks = _planted(tmp_path, outer_cv)
    monkeypatch.setattr(space_statistics, "VOXEL_BLOCK", 5)  # r by blocks of 5 voxels (with a remainder), as at real size
    vox = assert_streamed_equals_kept_whole(exp, data, spaces, masks)
    # the comparison is not vacuous: real permutation p values, FWER and the planted effect are in the table
    assert vox["p"].notna().all() and vox["p_fwer"].notna().all() and vox["significant"].any()
    assert vox.groupby("space")["r"].mean()["m/none/L2"] > 0.3


def test_streamed_statistics_equal_without_permutations_and_rois(tmp_path):
    exp, data, spaces, _ = _planted(tmp_path, "leave-one-run-out", n_permutations=0)
    exp.analysis.fwer_alpha = None
    vox = assert_streamed_equals_kept_whole(exp, data, spaces, None)
    assert vox["p"].isna().all() and "p_fwer" not in vox


def test_one_space_of_held_out_predictions_exists_at_a_time(tmp_path, monkeypatch):
    exp, data, spaces, masks = _planted(tmp_path, "leave-one-run-out")
    exp.encoding.predictions_in_memory_gib = 0.0  # memory-mapped: each space's file is on disk while it is open
    monkeypatch.setattr(held_out.tempfile, "tempdir", str(tmp_path))
    live, peak, sizes, arrays = set(), [0], [], []
    init, close = held_out.HeldOut.__init__, held_out.HeldOut.close

    def spy_init(self, names, *a, **k):
        # the earlier spaces' arrays are gone before this one's is allocated (no reference kept anywhere)
        peak[0] = max(peak[0], 1 + sum(ref() is not None for ref in arrays))
        init(self, names, *a, **k)
        arrays.extend(weakref.ref(arr) for arr in self.values())
        live.add(id(self))
        sizes.append(len(names))
        peak[0] = max(peak[0], len(live), len(list(tmp_path.glob("brainalign-heldout-*/*.npy"))))

    def spy_close(self):
        live.discard(id(self))
        close(self)

    monkeypatch.setattr(held_out.HeldOut, "__init__", spy_init)
    monkeypatch.setattr(held_out.HeldOut, "close", spy_close)
    run_scores, vox, _, _ = pipeline.cross_validate_statistics(exp, data, spaces, masks=masks)
    assert sizes == [1] * len(spaces) and peak[0] == 1  # one buffer of one space, never two at once
    assert not live and not list(tmp_path.glob("brainalign-heldout-*"))  # every buffer and file was let go
    assert vox["space"].unique().tolist() == ["baseline/noise"] + [f"m/none/L{k}" for k in range(3)]
    assert len(run_scores) == 4 * len(spaces)


def test_r_by_voxel_blocks_is_pearson_r_bit_for_bit():
    from brainalign.analysis.metrics import pearson_r

    rng = np.random.default_rng(5)
    Y = rng.standard_normal((50, 4096 * 2 + 7)).astype(np.float32) * 30 + 1000  # raw BOLD scale: rounding shows
    P = (0.3 * Y + rng.standard_normal(Y.shape)).astype(np.float32)
    Y[:, 3] = 5.0  # a constant voxel stays NaN
    r = space_statistics.pearson_r_by_blocks(Y, P)
    np.testing.assert_array_equal(r, pearson_r(Y, P))
    assert np.isnan(r[3]) and np.isfinite(np.delete(r, 3)).all()


def _assert_same(got, want):
    pd.testing.assert_frame_equal(got[0], want[0], check_exact=True)
    pd.testing.assert_frame_equal(got[1], want[1], check_exact=True)
    for name in want[2]:
        np.testing.assert_array_equal(got[2][name], want[2][name])
    pd.testing.assert_frame_equal(got[3][0], want[3][0], check_exact=True)
    for name, by_run in want[3][1].items():
        for run, r in by_run.items():
            np.testing.assert_array_equal(got[3][1][name][run], r)


def test_checkpoints_keep_each_finished_space_as_statistics_and_resume_to_the_same_tables(tmp_path):
    from brainalign.pipeline.checkpoint import EncodingCheckpoint

    exp, data, spaces, masks = _planted(tmp_path, "leave-one-run-out")
    plain = pipeline.cross_validate_statistics(exp, data, spaces, masks=masks)
    root = tmp_path / "ck"
    ck = EncodingCheckpoint(root)
    _assert_same(pipeline.cross_validate_statistics(exp, data, spaces, checkpoint=ck, masks=masks), plain)
    assert len(ck.fitted) == 4 * len(spaces)
    # no (space, fold) entry is left, so no space's predictions: one statistics entry per space instead
    assert not list(root.glob("*.npz")) and len(list((root / "statistics").glob("*.npz"))) == len(spaces)

    stats = ck.for_stage("statistics", "space")
    stats._paths("m/none/L1", 0)[0].unlink()  # lost (a kill before its entry was written): fitted again
    ck2 = EncodingCheckpoint(root)
    _assert_same(pipeline.cross_validate_statistics(exp, data, spaces, checkpoint=ck2, masks=masks), plain)
    assert ck2.fitted == [("m/none/L1", fold) for fold in range(4)] and len(ck2.loaded) == 4 * (len(spaces) - 1)

    spaces[2] = pipeline.FeatureSpace(spaces[2].name, spaces[2].X * 2 + 1, "model", model="m", prompt="none",
                                      layer=2, depth=1.0)  # its features changed since: not reused
    ck3 = EncodingCheckpoint(root)
    with pytest.warns(UserWarning, match="other inputs"):
        pipeline.cross_validate_statistics(exp, data, spaces, checkpoint=ck3, masks=masks)
    assert ck3.fitted == [("m/none/L2", fold) for fold in range(4)]


_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for p in [*(_ROOT / "configs").glob("*.yaml"), *(_ROOT / "src/brainalign/configs").glob("*.yaml")]
                 if "\nbrain:" in p.read_text() and "\nrepresentations:" not in p.read_text())  # not `steer` configs


@pytest.mark.parametrize("config", SHIPPED, ids=[f"{p.parent.parent.name}/{p.stem}" for p in SHIPPED])
def test_every_shipped_config_fits_32_gib_of_memory_and_20_gib_of_scratch_disk_per_subject(config):
    """Issue 19's goal as the dry-run states it, at real size (published sizes where the data are absent), for
    everything but the stimulus features of multimodal and frame models (features.extract stacks them in memory;
    the dry-run prints them: 0-323 GiB per subject). The row-wise features count one space's (a partition's spaces
    together), made from the memory-mapped cache when its fits start, not every space's."""
    from brainalign.pipeline.preflight import study_plan

    exp = load_config(config)
    plan = study_plan(exp, config.parent)
    assert plan.memory_bytes - plan.stimulus_feature_bytes <= 32 * 2**30, plan.text()
    assert plan.scratch_bytes <= 20 * 2**30, plan.text()
    at_once = max([1] + [len(p.spaces) for p in exp.analysis.partitions])
    if plan.n_spaces > 2 * at_once and exp.encoding.n_workers == 1:  # not every space's features at once
        assert plan.feature_space_bytes < plan.all_feature_space_bytes, plan.text()
    assert plan.prediction_bytes == 4 * plan.n_rows * plan.n_voxels  # one space's, whatever the number of spaces
