"""Label images → masks, Glasser groups, aggregation, prompt gain along the hierarchy."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign.analysis.rois import (
    aggregate_rois,
    glasser_group_masks,
    glasser_groups,
    group_summary,
    hierarchy_gain,
    hierarchy_levels,
    load_label_table,
    prompt_gain,
    roi_masks,
)
from brainalign.testing.planted import planted_hierarchy

TABLE = {1: "V1v", 2: "V1d", 3: "FFA-1", 5: "PPA"}


def _volume():
    lab = np.zeros((4, 4, 3), dtype=np.int16)
    lab[0, :, 0] = 1
    lab[1, :, 0] = 2
    lab[2, :2, 1] = 3
    lab[3, :, 2] = 5
    return lab


def test_every_label_becomes_a_mask_not_only_label_1(tmp_path):
    lab = _volume()
    img = nib.Nifti1Image(lab, np.eye(4))
    path = tmp_path / "rois.nii.gz"
    img.to_filename(path)
    ctab = tmp_path / "rois.ctab"
    ctab.write_text("0 Unknown\n1 V1v\n2 V1d\n3 FFA-1\n5 PPA\n")
    masks = roi_masks(path, ctab)
    assert list(masks) == ["V1v", "V1d", "FFA-1", "PPA"]
    for v, name in TABLE.items():
        np.testing.assert_array_equal(masks[name], lab == v)
    # with a brain mask, masks are 1-D over the brain voxels
    brain = lab > 0
    m1 = roi_masks(lab, TABLE, labels=["PPA", 3], brain_mask=brain)
    assert m1["PPA"].shape == (brain.sum(),) and m1["PPA"].sum() == 4 and m1["FFA-1"].sum() == 2


def test_label_table_formats_agree(tmp_path):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"index": list(TABLE), "name": list(TABLE.values())}).to_csv(csv, index=False)
    js = tmp_path / "t.json"
    js.write_text(json.dumps({str(k): v for k, v in TABLE.items()}))
    assert load_label_table(csv) == TABLE == load_label_table(js) == load_label_table({v: k for k, v in TABLE.items()})


def test_gifti_label_table_is_read(tmp_path):
    data = np.array([0, 1, 1, 2, 2, 2], dtype=np.int32)
    lt = nib.gifti.GiftiLabelTable()
    for k, nm in [(0, "???"), (1, "V1"), (2, "V2")]:
        lab = nib.gifti.GiftiLabel(key=k)
        lab.label = nm
        lt.labels.append(lab)
    img = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(data, intent="NIFTI_INTENT_LABEL")], labeltable=lt)
    path = tmp_path / "x.label.gii"
    nib.save(img, path)
    masks = roi_masks(path)
    assert masks["V2"].sum() == 3 and masks["V1"].sum() == 2


def test_unknown_label_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match="'EBA' is not in the label table; available names"):
        roi_masks(_volume(), TABLE, labels=["EBA"])
    with pytest.raises(ValueError, match="resample the atlas"):
        roi_masks(_volume(), TABLE, brain_mask=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="unknown Glasser group"):
        glasser_group_masks(np.arange(10), ["V4"])


def test_glasser_table_is_data_with_the_published_indices():
    g = glasser_groups()
    assert g["early_visual"] == [1, 4, 5] and g["MFG"] == [12] and len(g["PC"]) == 8
    assert len(g) == 13 and g["SMA"] == [43, 44, 55] and g["auditory"] == [24, 104, 124, 173, 174]  # ours
    levels = hierarchy_levels()
    assert [lv for lv, _ in levels] == ["early_visual", "dorsal_mt", "temporal_parietal", "frontal", "motor"]
    labels = np.array([1, 4, 5, 12, 13, 0, 1])
    masks = glasser_group_masks(labels, ["early_visual", "MFG"])
    assert masks["early_visual"].tolist() == [True, True, True, False, False, False, True]


def test_aggregation_voxel_subroi_roi_subject_group():
    scores = {"s1": np.array([1.0, 3.0, 10.0, np.nan, 2.0]), "s2": np.array([2.0, 2.0, 4.0, 4.0, 0.0])}
    masks = {"a": np.array([1, 1, 0, 0, 0], bool), "b": np.array([0, 0, 1, 1, 0], bool), "c": np.array([0, 0, 0, 0, 1], bool)}
    t = aggregate_rois(scores, masks, rois={"AB": ["a", "b"], "C": ["c"]}, how="mean")
    got = t.set_index(["subject", "roi"])["value"]
    assert got["s1", "AB"] == pytest.approx((2.0 + 10.0) / 2)  # mean over sub-ROIs of voxel means, NaN ignored
    assert got["s2", "AB"] == pytest.approx(3.0)
    assert t.set_index(["subject", "roi"]).loc[("s1", "AB"), "n_voxels"] == 3
    med = aggregate_rois(scores, masks, how="median").set_index(["subject", "roi"])["value"]
    assert med["s1", "a"] == 2.0
    g = group_summary(t, how="mean").set_index("roi")
    assert g.loc["AB", "value"] == pytest.approx(4.5) and g.loc["AB", "n_subjects"] == 2
    assert g.loc["AB", "sem"] == pytest.approx(np.std([6.0, 3.0], ddof=1) / np.sqrt(2))
    with pytest.raises(ValueError, match="not in masks"):
        aggregate_rois(scores, masks, rois={"X": ["zz"]})


@pytest.mark.parametrize("direction", [1, -1])
def test_planted_hierarchy_slope_sign_and_ratio_found(direction):
    planted = {"early_visual": 0.02, "dorsal_mt": 0.025, "temporal_parietal": 0.03, "frontal": 0.04, "motor": 0.04}
    if direction < 0:
        planted = dict(zip(planted, reversed(list(planted.values()))))
    sim = planted_hierarchy(planted, voxel_noise=0.02, subject_noise=0.005, seed=3)
    base = aggregate_rois(sim.baseline, sim.masks)
    prom = aggregate_rois(sim.prompted, sim.masks)
    gains = prompt_gain(prom, base)
    levels, summary = hierarchy_gain(gains, sim.hierarchy)
    assert np.sign(summary["slope"]) == direction and summary["slope_p"] < 0.01
    truth = planted["early_visual"] / np.mean([planted["frontal"], planted["motor"]])
    assert summary["early_late_ratio"] == pytest.approx(truth, rel=0.1)
    assert list(levels.columns) == ["subject", "level", "order", "value"]


def test_prompt_gain_requires_matching_rows():
    a = pd.DataFrame({"subject": [0, 0], "roi": ["x", "y"], "value": [1.0, 2.0]})
    b = pd.DataFrame({"subject": [0], "roi": ["x"], "value": [0.5]})
    with pytest.raises(ValueError, match="same \\(subject, roi\\) pairs"):
        prompt_gain(a, b)
    assert prompt_gain(a.iloc[:1], b)["gain"].tolist() == [0.5]


def test_best_instruction_per_roi_found():
    rng = np.random.default_rng(0)
    masks = {"early": np.r_[np.ones(20, bool), np.zeros(20, bool)], "EBA": np.r_[np.zeros(20, bool), np.ones(20, bool)]}
    planted = {"IC": np.r_[np.full(20, 0.2), np.full(20, 0.4)], "IU": np.r_[np.full(20, 0.3), np.full(20, 0.2)]}
    scores = {k: v + 0.05 * rng.standard_normal((4, 40)) for k, v in planted.items()}
    from brainalign.analysis.rois import best_instruction_per_roi, instruction_profiles

    prof = instruction_profiles(scores, masks)
    assert set(prof.columns) >= {"instruction", "subject", "roi", "value"} and len(prof) == 2 * 4 * 2
    best = best_instruction_per_roi(prof).set_index("roi")
    assert best.loc["early", "best_instruction"] == "IU" and best.loc["EBA", "best_instruction"] == "IC"
    assert best.loc["EBA", "margin"] == pytest.approx(0.2, abs=0.03)
