"""NSD loader on a miniature NSD tree: repeat averaging, shared-1000 split, label tables, images."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from brainalign.brain.nsd import NSDImages, NSDLayout, load_nsd_betas, load_nsd_rois, read_expdesign
from brainalign.testing.fixtures import write_nsd


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    return write_nsd(tmp_path_factory.mktemp("nsd") / "NSD", n_sessions=2)


def _hand_average(nsd, sessions, mask):
    """Average by hand from the NIfTI files: int16 / 300, grouped by the nsdId of each trial."""
    root = nsd["root"]
    rows = []
    for s in sessions:
        p = root / f"nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session{s:02d}.nii.gz"
        rows.append(np.asarray(nib.load(p).dataobj).astype(np.float64)[mask].T / 300.0)
    trials = np.concatenate(rows)
    ids = nsd["trial_nsd_ids"][1][: len(trials)]
    uniq = np.unique(ids)
    return uniq, np.stack([trials[ids == u].mean(0) for u in uniq]), np.array([(ids == u).sum() for u in uniq])


def test_expdesign_is_converted_to_zero_based(nsd):
    d = read_expdesign(nsd["root"] / "nsddata/experiments/nsd/nsd_expdesign.mat")
    assert d["masterordering"].shape == (30000,) and d["subjectim"].shape == (8, 10000)
    np.testing.assert_array_equal(d["masterordering"][:1500], nsd["image10k"][1])
    # the shared columns are identical across subjects and equal sharedix as a set
    assert (d["subjectim"][:, :1000] == d["subjectim"][0, :1000]).all()
    assert set(d["sharedix"]) == set(d["subjectim"][0, :1000])


@pytest.mark.parametrize("source", ["nifti", "hdf5"])
def test_repeat_averaging_matches_hand_computation(nsd, source):
    got = load_nsd_betas(nsd["root"], 1, [1, 2], source=source, chunk_trials=200)
    uniq, expect, counts = _hand_average(nsd, [1, 2], nsd["nsdgeneral"])
    np.testing.assert_array_equal(got.items["nsd_id"], uniq)
    np.testing.assert_array_equal(got.items["n_repeats"], counts)
    assert (counts == 3).all()  # the fixture shows every image 3 times in 2 sessions
    np.testing.assert_allclose(got.data, expect, rtol=1e-5, atol=1e-6)
    assert got.data.dtype == np.float32 and got.n_voxels == int(nsd["nsdgeneral"].sum())


def test_single_session_without_averaging_and_session_zscore(nsd):
    got = load_nsd_betas(nsd["root"], 1, [2], average_repeats=False)
    assert got.data.shape == (750, int(nsd["nsdgeneral"].sum()))
    np.testing.assert_array_equal(got.items["nsd_id"], nsd["trial_nsd_ids"][1][750:])
    z = load_nsd_betas(nsd["root"], 1, [2], average_repeats=False, zscore_sessions=True)
    np.testing.assert_allclose(z.data.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.data.std(0), 1, atol=1e-4)


def test_shared1000_split(nsd):
    got = load_nsd_betas(nsd["root"], 1, [1, 2])
    d = read_expdesign(nsd["root"] / "nsddata/experiments/nsd/nsd_expdesign.mat")
    shared = set(d["subjectim"][0, :1000])
    test = got.split_mask("test")
    assert test.sum() == 60  # n_shared_images of the fixture
    assert all(i in shared for i in got.items["nsd_id"][test])
    assert not any(i in shared for i in got.items["nsd_id"][~test])
    assert set(got.items["split"]) == {"train", "test"}


def test_every_label_of_every_roi_table(nsd):
    layout = NSDLayout(nsd["root"], 1)
    betas = load_nsd_betas(nsd["root"], 1, [1])
    rois = load_nsd_rois(layout, ["prf-visualrois", "floc-faces", "floc-places"], mask_img=betas.mask_img)
    brain = nsd["nsdgeneral"]
    for name in ("prf-visualrois", "floc-faces", "floc-places"):
        labels = nsd["roi_labels"][name]
        assert list(rois[name]) == labels  # every label, table order, names from the .ctab
        for i, lab in enumerate(labels, 1):
            np.testing.assert_array_equal(rois[name][lab], nsd["rois"][name][brain] == i)
    whole = load_nsd_rois(layout, ["floc-faces"], hemispheres=True)["floc-faces"]
    assert set(whole) == {f"{h}.{lab}" for h in ("lh", "rh") for lab in nsd["roi_labels"]["floc-faces"]}
    vol = nsd["rois"]["floc-faces"]
    x = np.arange(vol.shape[0])[:, None, None] < vol.shape[0] // 2
    np.testing.assert_array_equal(whole["lh.FFA-1"], (vol == 2) & x)
    np.testing.assert_array_equal(whole["lh.FFA-1"] | whole["rh.FFA-1"], vol == 2)


def test_images_by_nsd_id(nsd):
    ids = nsd["shown"][[5, 0, 5, 17]]
    with NSDImages(nsd["root"]) as imgs:
        assert imgs.shape == (73000, 8, 8, 3)
        got = imgs[ids]
    assert got.dtype == np.uint8 and got.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(got[:, 0, 0, 0], ids % 251)


def test_missing_files_and_mismatches(nsd, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"betas_session03\.nii\.gz.*s3://natural-scenes-dataset"):
        load_nsd_betas(nsd["root"], 1, [3], source="nifti")
    with pytest.raises(FileNotFoundError, match="nsd_expdesign.mat"):
        load_nsd_betas(tmp_path, 1, [1])
    bad = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.uint8), np.eye(4)), bad)
    with pytest.raises(ValueError, match="mask has"):
        load_nsd_betas(nsd["root"], 1, [1], mask=bad, source="nifti")
    with pytest.raises(ValueError, match="NSD subjects are 1..8"):
        NSDLayout(nsd["root"], 9)


def test_stimulus_images_resized_in_order(nsd):
    from brainalign.stimuli.images import iter_nsd_images, nsd_images

    ids = nsd["shown"][[3, 1, 2]]
    got = nsd_images(nsd["root"], ids, size=4)
    assert got.shape == (3, 4, 4, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[:, 0, 0, 0], ids % 251)  # constant images survive resizing
    batches = list(iter_nsd_images(nsd["root"], nsd["shown"][:5], batch_size=2))
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    with pytest.raises(IndexError, match="0..72999"):
        nsd_images(nsd["root"], [73000])


def test_planted_brightness_effect_recovered(nsd):
    """The fixture's betas encode image brightness: a one-feature regression on the images recovers the weights."""
    got = load_nsd_betas(nsd["root"], 1, [1, 2])
    imgs = NSDImages(nsd["root"])
    x = imgs[got.items["nsd_id"].to_numpy()].reshape(len(got.items), -1).mean(1) / 125.0 - 1.0
    imgs.close()
    slope = (x - x.mean()) @ (got.data - got.data.mean(0)) / ((x - x.mean()) ** 2).sum()
    w = nsd["weight"][1][nsd["nsdgeneral"]]
    assert np.corrcoef(slope, w)[0, 1] > 0.99


def test_ncsnr_ceiling_and_available_sessions(nsd):
    from brainalign.brain.nsd import available_sessions, load_nsd_mask, load_nsd_ncsnr

    layout = NSDLayout(nsd["root"], 1)
    assert available_sessions(layout) == [1, 2]
    mask = load_nsd_mask(layout)
    snr, nc = load_nsd_ncsnr(layout, mask, n_average=3)
    expect = nsd["ncsnr"][1][nsd["nsdgeneral"]]
    np.testing.assert_allclose(snr, expect, rtol=1e-6)
    np.testing.assert_allclose(nc, 100 * expect**2 / (expect**2 + 1 / 3), rtol=1e-5)
    _, nc1 = load_nsd_ncsnr(layout, mask, n_average=1)
    assert (nc1 <= nc + 1e-6).all()  # averaging more trials raises the ceiling


def test_hdf5_and_nifti_agree_without_mask(nsd):
    a = load_nsd_betas(nsd["root"], 1, [1], mask=None, source="nifti", average_repeats=False)
    b = load_nsd_betas(nsd["root"], 1, [1], mask=None, source="hdf5", average_repeats=False)
    assert a.data.shape == (750, int(np.prod(nsd["shape"])))
    np.testing.assert_array_equal(a.data, b.data)
