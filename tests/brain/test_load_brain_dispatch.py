"""load_brain dispatches a config-style section to each loader; brain_manifest lists what it reads."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.brain.items import ItemResponses
from brainalign.brain.loaders import brain_manifest, load_brain
from brainalign.brain.manifest import missing_files
from brainalign.brain.recording import Recording
from brainalign.testing.fixtures import write_ds003076, write_ds004323, write_glmsingle, write_movie10, write_nsd, write_vwt_hdf5


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("data")
    write_ds004323(r / "ds004323", n_runs=2, n_trs=12, shape=(3, 3, 2))
    write_ds003076(r / "ds003076", n_items=3, n_control=1)
    write_nsd(r / "NSD", n_sessions=1)
    write_movie10(r / "movie10", segments={"bourne": 1, "wolf": 1, "life": 1})
    write_glmsingle(r / "glmsingle" / "sub-1001", n_items=6)
    write_vwt_hdf5(r / "vwt" / "S01_responses.hdf")
    return r


def test_every_format(root):
    sections = {
        "bids": dict(dataset="ds004323", subject="01", task="gameplay", derivatives="derivatives/fmriprep", runs=[1, 2],
                     confounds_strategy=["motion"]),
        "nsd": dict(subject=1, sessions=[1], rois=["floc-faces"]),
        "movie10": dict(path="movie10/fsaverage6", subject="01", truncate={"bourne": 8}, n_vertices=(42, 42)),
        "vwt_hdf5": dict(path="vwt/S01_responses.hdf", tr=2.0),
    }
    for fmt, kw in sections.items():
        resp, events = load_brain(fmt, root / ("NSD" if fmt == "nsd" else ""), **dict(kw))
        assert isinstance(resp, ItemResponses if fmt == "nsd" else Recording), fmt
        assert resp.data.dtype == np.float32 and np.isfinite(resp.data).all(), fmt
    nsd, _ = load_brain("nsd", root / "NSD", subject=1, sessions=[1], rois=["floc-faces"])
    assert list(nsd.meta["rois"]["floc-faces"]) == ["OFA", "FFA-1", "FFA-2", "mTL-faces", "aTL-faces"]
    # glmsingle with an item table built from the BIDS events of ds003076 (3 items x 2 runs = 6 betas)
    items = {"bids": dict(dataset="ds003076", subject="1001", task="Syllogisms", space=None, mask="ds003076_mask.nii.gz")}
    g, _ = load_brain("glmsingle", root, path="glmsingle/sub-1001/TYPED_FITHRF_GLMDENOISE_RR.mat",
                      mask="glmsingle/sub-1001/mask.nii.gz", items=items)
    assert list(g.items["item"])[:2] == ["Syllogisms_run-01_trial-01", "Syllogisms_run-01_trial-02"]


def test_typos_and_manifests(root):
    with pytest.raises(ValueError, match=r"does not take \['sesions'\]; accepted"):
        load_brain("nsd", root / "NSD", subject=1, sesions=[1])
    with pytest.raises(ValueError, match="unknown brain format"):
        load_brain("fmriprep", root)
    man = brain_manifest("bids", dataset="ds004323", subject="01", task="gameplay", runs=[1, 2, 3], derivatives="derivatives/fmriprep")
    miss = [m.path for m in missing_files(man, root)]
    assert miss == [f"ds004323/derivatives/fmriprep/sub-01/func/sub-01_task-gameplay_run-03_{s}" for s in (
        "space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz", "space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz",
        "desc-confounds_timeseries.tsv")]
    assert missing_files(brain_manifest("nsd", subject=1, sessions=[1], rois=["floc-faces"]), root / "NSD") == []
    assert missing_files(brain_manifest("movie10", path="movie10/fsaverage6", subject="01"), root) == []
    assert [m.path for m in missing_files(brain_manifest("vwt_hdf5", path="vwt/S02_responses.hdf"), root)] == ["vwt/S02_responses.hdf"]
