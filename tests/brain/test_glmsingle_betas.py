"""GLMsingle-style betas: every format yields the same items × voxels matrix; item tables checked."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.brain.bids import load_bids
from brainalign.brain.betas import items_from_events, load_item_betas
from brainalign.testing.fixtures import write_ds003076, write_glmsingle


@pytest.fixture(scope="module")
def glm(tmp_path_factory):
    return write_glmsingle(tmp_path_factory.mktemp("glmsingle"))


def test_all_formats_agree(glm):
    expect = glm["betas"][glm["mask"]].T
    npy = load_item_betas(glm["npy"], glm["items"], mask=glm["mask_path"], allow_pickle=True)
    mat = load_item_betas(glm["mat"], glm["items"], mask=glm["mask_path"])
    nii = load_item_betas(glm["nifti"], glm["items"], mask=glm["mask_path"])
    ext = load_item_betas(glm["extract"], glm["items"])
    for got in (npy, mat, nii, ext):
        np.testing.assert_allclose(got.data, expect, rtol=1e-6)
        assert list(got.items["item"]) == [f"item{i:02d}" for i in range(12)]
    assert npy.mask_img is not None and ext.mask_img is None
    np.testing.assert_array_equal(npy.unmask(npy.data[0]).get_fdata()[glm["mask"]], expect[0])


def test_bad_inputs(glm, tmp_path):
    with pytest.raises(ValueError, match="allow_pickle=True"):
        load_item_betas(glm["npy"], glm["items"], mask=glm["mask_path"])
    with pytest.raises(ValueError, match="pass mask="):
        load_item_betas(glm["mat"], glm["items"])
    with pytest.raises(ValueError, match="item table has 3 rows"):
        load_item_betas(glm["extract"], ["a", "b", "c"])
    with pytest.raises(ValueError, match="no variable 'nope'"):
        load_item_betas(glm["mat"], key="nope", mask=glm["mask_path"])
    with pytest.raises(FileNotFoundError, match="TYPED_FITHRF_GLMDENOISE_RR"):
        load_item_betas(tmp_path / "missing.npy")
    nan = glm["betas"].copy()
    nan[1, 1, 1, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.warns(UserWarning, match="dropping 1 of"):
        got = load_item_betas(tmp_path / "nan.npy", mask=glm["mask_path"])
    assert got.n_voxels == int(glm["mask"].sum()) - 1
    assert got.mask_img.get_fdata()[1, 1, 1] == 0


def test_items_from_ds003076_events(tmp_path):
    ds = write_ds003076(tmp_path / "ds003076", n_items=6, n_control=3)
    _, ev = load_bids(ds["root"], "1001", "Syllogisms", space=None, mask=ds["mask"])
    items = items_from_events(ev, task="Syllogisms")
    assert len(items) == 2 * 6  # control trials dropped, 6 items × 2 runs
    assert "control" not in set(items["stimulus"])
    assert items["item"].iloc[0] == "Syllogisms_run-01_trial-01" and items["item"].is_unique
    first = ds["events"][("1001", "Syllogisms", 1)]
    assert list(items[items.run == 1]["premise1"]) == list(first[first.trial_type != "control"]["premise1"])


def test_item_texts_in_deductive_chat_format(tmp_path):
    from brainalign.stimuli.text_items import item_texts, reasoning_item_text

    ds = write_ds003076(tmp_path / "ds003076", n_items=4, n_control=2)
    _, ev = load_bids(ds["root"], "1001", "Syllogisms", space=None, mask=ds["mask"])
    items = items_from_events(ev, task="Syllogisms")
    texts = item_texts(items)
    row = items.iloc[0]
    n_prem = 3 if isinstance(row.premise3, str) else 2
    assert texts.iloc[0].splitlines()[0] == "Premises:"
    assert texts.iloc[0].splitlines()[1] == f"1. {row.premise1}."
    assert texts.iloc[0].splitlines()[n_prem + 1:] == ["Conclusion:", f"{row.conclusion}."]
    full = {"premise1": "A", "premise2": "B", "premise3": "C", "conclusion": "D"}
    assert reasoning_item_text(full) == "Premises:\n1. A.\n2. B.\n3. C.\nConclusion:\nD."
    with pytest.raises(ValueError, match="control trial"):
        reasoning_item_text({"premise1": "n/a", "conclusion": "n/a"})


def test_top_fraction_mask_and_item_selection(glm):
    import nibabel as nib

    from brainalign.brain.betas import top_fraction_mask

    rng = np.random.default_rng(1)
    mask_img = nib.load(glm["mask_path"])
    stat = rng.standard_normal(glm["mask"].shape)
    top = top_fraction_mask(nib.Nifti1Image(stat, mask_img.affine), mask_img, fraction=0.25)
    sel = np.asarray(top.dataobj) > 0
    n = int(np.ceil(0.25 * glm["mask"].sum()))
    assert sel.sum() == n and not sel[~glm["mask"]].any()
    assert stat[sel].min() >= np.sort(stat[glm["mask"]])[-n]  # exactly the n highest ROI voxels
    got = load_item_betas(glm["mat"], glm["items"], mask=top)
    np.testing.assert_allclose(got.data, glm["betas"][sel].T, rtol=1e-6)
    kept = got.select(~got.items["item"].isin(["item07", "item13"]).to_numpy())
    assert len(kept.items) == 11 and "item07" not in set(kept.items["item"])
    np.testing.assert_array_equal(kept.data[7], got.data[8])
    with pytest.raises(ValueError, match="different grids"):
        top_fraction_mask(nib.Nifti1Image(stat[:2], mask_img.affine), mask_img)
