"""BIDS loader on miniature ds004323 (fMRIPrep derivatives) and ds003076 (raw + events) layouts."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from brainalign.brain.bids import find_bold_runs, load_bids, repetition_time
from brainalign.testing.fixtures import write_ds003076, write_ds004323


@pytest.fixture(scope="module")
def ds004323(tmp_path_factory):
    return write_ds004323(tmp_path_factory.mktemp("ds004323") / "ds004323", n_runs=2, n_trs=30)


@pytest.fixture(scope="module")
def ds003076(tmp_path_factory):
    return write_ds003076(tmp_path_factory.mktemp("d") / "ds003076", subjects=("1001", "1026"))


def test_derivatives_tr_runs_and_mask(ds004323):
    rec, events = load_bids(ds004323["root"], "01", "gameplay", derivatives=ds004323["derivatives"],
                            detrend=False, standardize=False)
    assert rec.tr == 2.0
    assert rec.run_ids == ("task-gameplay_run-01", "task-gameplay_run-02")
    np.testing.assert_array_equal(np.unique(rec.runs), [1, 2])
    assert rec.data.shape == (2 * ds004323["n_trs"], int(ds004323["mask"]["01"].sum()))
    assert rec.data.dtype == np.float32
    # no events.tsv in ds004323: the table is empty, not an error
    assert len(events) == 0
    # without cleaning, the loaded columns are the masked voxels in C order
    img = nib.load(rec.meta["runs"][0]["bold"])
    expect = img.get_fdata()[ds004323["mask"]["01"] > 0].T
    np.testing.assert_allclose(rec.data[rec.runs == 1], expect, rtol=1e-5)


def test_confound_regression_removes_planted_confound(ds004323):
    kw = dict(derivatives=ds004323["derivatives"], detrend=False, standardize=False)
    raw, _ = load_bids(ds004323["root"], "01", "gameplay", **kw)
    clean, _ = load_bids(ds004323["root"], "01", "gameplay", confounds=["trans_x", "trans_x_derivative1"], **kw)
    for run in (1, 2):
        tx = ds004323["trans_x"][("01", run)]
        r_raw = [abs(np.corrcoef(raw.data[raw.runs == run][:, v], tx)[0, 1]) for v in range(raw.n_voxels)]
        r_clean = [abs(np.corrcoef(clean.data[clean.runs == run][:, v], tx)[0, 1]) for v in range(clean.n_voxels)]
        assert min(r_raw) > 0.5  # the confound dominates before
        assert max(r_clean) < 1e-4  # and is orthogonal after
    assert clean.meta["confounds"] == ["trans_x", "trans_x_derivative1"]


def test_nilearn_load_confounds_strategy(ds004323):
    rec, _ = load_bids(ds004323["root"], "01", "gameplay", derivatives=ds004323["derivatives"],
                       confounds_strategy=("motion",), detrend=False, standardize=False)
    tx = ds004323["trans_x"][("01", 1)]
    r = [abs(np.corrcoef(rec.data[rec.runs == 1][:, v], tx)[0, 1]) for v in range(rec.n_voxels)]
    assert max(r) < 1e-4


def test_tr_header_mismatch_is_an_error(ds004323, tmp_path):
    bold = find_bold_runs(ds004323["root"], "01", "gameplay")[0].bold
    img = nib.load(bold)
    bad = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header.copy())
    bad.header.set_zooms(img.header.get_zooms()[:3] + (1.5,))
    bad_path = tmp_path / bold.name
    nib.save(bad, bad_path)
    with pytest.raises(ValueError, match=r"TR mismatch.*RepetitionTime=2.0 s.*header says 1.5 s"):
        repetition_time(bad_path, ds004323["root"])
    # header in milliseconds agrees with a 2.0 s sidecar
    ms = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header.copy())
    ms.header.set_xyzt_units("mm", "msec")
    ms.header.set_zooms(img.header.get_zooms()[:3] + (2000.0,))
    nib.save(ms, bad_path)
    assert repetition_time(bad_path, ds004323["root"]) == 2.0
    with pytest.raises(ValueError, match="brain.tr=1.49"):
        repetition_time(bold, ds004323["root"], expected=1.49)


def test_tr_from_top_level_sidecar_and_missing(ds004323, tmp_path):
    bold = find_bold_runs(ds004323["root"], "01", "gameplay")[0].bold
    assert repetition_time(bold, ds004323["root"]) == 2.0
    side = ds004323["root"] / "task-gameplay_bold.json"
    saved = side.read_text()
    try:
        side.write_text(json.dumps({"TaskName": "Gameplay"}))
        with pytest.raises(ValueError, match="no RepetitionTime"):
            repetition_time(bold, ds004323["root"])
    finally:
        side.write_text(saved)


def test_ds003076_events_truncation_and_missing_run(ds003076):
    root = ds003076["root"]
    rec, ev = load_bids(root, "1001", "Transitive", space=None, mask=ds003076["mask"], truncate_after_events=10.0)
    assert rec.tr == 2.0
    for run in (1, 2):
        truth = ds003076["events"][("1001", "Transitive", run)]
        end = (truth.onset + truth.duration).max()
        assert (rec.runs == run).sum() == int(np.floor((end + 10) / 2.0))
        got = ev[ev.run == run]
        assert list(got.stimulus) == list(truth.trial_type)
        assert got.premise3.isna().sum() == (truth.premise3 == "n/a").sum()
    assert list(ev.columns[:4]) == ["run", "onset", "duration", "stimulus"]
    assert set(ev.stimulus) <= {"control", "2_true_affirm", "2_false_affirm", "2_true_negate", "2_false_negate"}
    # without truncation every volume is kept
    full, _ = load_bids(root, "1001", "Transitive", space=None, mask=ds003076["mask"])
    assert (full.runs == 1).sum() == ds003076["n_trs"][("1001", "Transitive", 1)]
    with pytest.raises(FileNotFoundError, match=r"run\(s\) \[3\]"):
        load_bids(root, "1001", "Syllogisms", space=None, mask=ds003076["mask"], runs=[1, 3])


def test_bad_inputs_are_named(ds003076, ds004323, tmp_path):
    root = ds003076["root"]
    with pytest.raises(ValueError, match="raw BIDS data have no brain mask"):
        load_bids(root, "1001", "Syllogisms", space=None)
    with pytest.raises(FileNotFoundError, match="sub-9999"):
        load_bids(root, "9999", "Syllogisms", space=None, mask=ds003076["mask"])
    wrong = tmp_path / "wrong_mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)), wrong)
    with pytest.raises(ValueError, match="resample_to_img"):
        load_bids(root, "1001", "Syllogisms", space=None, mask=wrong)
    with pytest.raises(FileNotFoundError, match="dataset_description.json"):
        load_bids(tmp_path, "1001", "Syllogisms", space=None, mask=wrong)
    with pytest.raises(FileNotFoundError, match="space-T1w"):
        load_bids(ds004323["root"], "01", "gameplay", derivatives=ds004323["derivatives"], space="T1w")


def test_single_run_matches_nifti_loader_and_constant_voxels_dropped(ds004323, tmp_path):
    from brainalign.brain.recording import load_nifti_recording

    run = find_bold_runs(ds004323["derivatives"], "01", "gameplay", space="MNI152NLin2009cAsym")[0]
    full = tmp_path / "full_mask.nii.gz"  # covers the zeroed (constant) voxels outside the brain mask
    nib.save(nib.Nifti1Image(np.ones(ds004323["shape"], np.uint8), nib.load(run.bold).affine), full)
    with pytest.warns(UserWarning, match="constant"):
        rec, _ = load_bids(ds004323["root"], "01", "gameplay", derivatives=ds004323["derivatives"], runs=[1], mask=full)
    with pytest.warns(UserWarning, match="constant"):
        ref = load_nifti_recording(run.bold, full, np.ones(ds004323["n_trs"], int), tr=2.0)
    assert rec.dropped_voxels == ref.dropped_voxels == int((ds004323["mask"]["01"] == 0).sum())
    np.testing.assert_allclose(rec.data, ref.data, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(rec.mask_img.get_fdata(), ds004323["mask"]["01"])


def test_fsaverage_gifti_derivatives(tmp_path):
    """fMRIPrep surface outputs: hemi-L + hemi-R per run, confounds from the shared TSV."""
    from brainalign.testing.fixtures import write_movie10

    m = write_movie10(tmp_path, segments={"bourne": 2})
    conf_dir = next(m["fmriprep"].glob("sub-01/ses-001/func"))
    tx = np.random.default_rng(0).standard_normal(10)
    import pandas as pd

    pd.DataFrame({"trans_x": tx}).to_csv(conf_dir / "sub-01_ses-001_task-bourne01_desc-confounds_timeseries.tsv", sep="\t", index=False)
    cif, _ = load_bids(m["raw"], "01", "bourne01", derivatives=m["fmriprep"], space="fsLR", detrend=False, standardize=False)
    assert cif.space == "fsLR_den-91k" and cif.n_vertices == (40, 41) and cif.data.shape == (10, 85)
    assert [s[0] for s in cif.meta["structures"]][-1] == "CIFTI_STRUCTURE_THALAMUS_LEFT"
    seg1 = m["data"][("01", "bourne")][:10]
    np.testing.assert_allclose(cif.data[:, :40], seg1[:, :40], rtol=1e-6)  # left cortex grayordinates
    np.testing.assert_allclose(cif.data[:, 40:81], seg1[:, 42:83], rtol=1e-6)
    rec, ev = load_bids(m["raw"], "01", "bourne01", derivatives=m["fmriprep"], space="fsaverage6",
                       confounds=["trans_x"], detrend=False, standardize=False)
    assert rec.space == "fsaverage6" and rec.mask_img is None and rec.n_vertices == (42, 42)
    assert rec.tr == 1.49 and rec.data.shape == (10, 84)
    assert list(ev.stimulus) == ["bourne/bourne01.mkv"]  # Movie10's top-level (inherited) events.tsv
    np.testing.assert_allclose(np.corrcoef(rec.data.T, tx)[-1, :-1], 0, atol=1e-4)
    with pytest.raises(ValueError, match="remove mask="):
        load_bids(m["raw"], "01", "bourne01", derivatives=m["fmriprep"], space="fsaverage6", mask=tmp_path / "x.nii.gz")
