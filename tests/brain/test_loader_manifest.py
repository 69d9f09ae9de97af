"""Manifests list exactly the files the loaders read: complete on the fixtures, precise when one is removed."""
from __future__ import annotations

import pytest

from brainalign.brain.manifest import bids_manifest, missing_files, movie10_manifest, nsd_manifest
from brainalign.testing.fixtures import write_ds003076, write_ds004323, write_movie10, write_nsd


def test_nsd_manifest_complete_then_names_the_missing_file(tmp_path):
    nsd = write_nsd(tmp_path / "NSD", n_sessions=1)
    man = nsd_manifest(1, [1], rois=["floc-faces"], hemispheres=True)
    assert missing_files(man, nsd["root"]) == []
    gone = nsd["root"] / "nsddata/freesurfer/subj01/label/floc-faces.mgz.ctab"
    gone.unlink()
    miss = missing_files(man, nsd["root"])
    assert [m.path for m in miss] == ["nsddata/freesurfer/subj01/label/floc-faces.mgz.ctab"]
    assert "s3://natural-scenes-dataset/nsddata/freesurfer/subj01/label/floc-faces.mgz.ctab" in miss[0].describe()
    assert any("betas_session02" in m.path for m in missing_files(nsd_manifest(1, [1, 2]), nsd["root"]))


def test_bids_and_movie10_manifests(tmp_path):
    ds = write_ds004323(tmp_path / "ds004323", n_runs=2, n_trs=5, shape=(3, 2, 2))
    man = bids_manifest("ds004323", "01", "gameplay", [1, 2], derivatives="derivatives/fmriprep", events=False)
    assert missing_files(man, ds["root"]) == []
    assert [m.path for m in missing_files(bids_manifest("ds004323", "01", "gameplay", [1, 2, 3], events=False), ds["root"])] == [
        "sub-01/func/sub-01_task-gameplay_run-03_bold.nii.gz"]
    d3 = write_ds003076(tmp_path / "ds003076", n_items=2, n_control=1)
    assert missing_files(bids_manifest("ds003076", "1001", "Syllogisms", [1, 2]), d3["root"]) == []
    m10 = write_movie10(tmp_path / "m10", segments={"life": 1})
    man = movie10_manifest("01", movies=("life", "bourne"))
    assert [m.path for m in missing_files(man, m10["npy"])] == ["sub1-bourne-fsaverage6.npy"]
    with pytest.raises(ValueError):
        nsd_manifest(9, [1])
