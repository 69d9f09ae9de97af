"""brain.rois without a label image: the dataset's own ROI files (format nsd), checked before any compute."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from brainalign.config import BrainSpec, ConfigError, load_config
from brainalign.pipeline.checks import check_roi_names
from brainalign.testing.fixtures import write_nsd

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "nsd_instruction_tuned_image.yaml"


def test_roi_spec_without_image_needs_nsd_and_its_roi_files():
    with pytest.raises(ValueError, match="only format 'nsd' reads"):
        BrainSpec(format="nifti", bold="b.nii.gz", mask="m.nii.gz", tr=2.0, rois=dict(groups={"a": ["x"]}))
    with pytest.raises(ValueError, match="only format 'nsd' reads"):
        BrainSpec(format="nsd", data_root="d", rois=dict(groups={"a": ["x"]}))
    with pytest.raises(ValueError, match="go together"):
        BrainSpec(format="nsd", data_root="d", options=dict(rois=["floc-faces"]), rois=dict(image="x.nii.gz"))
    spec = BrainSpec(format="nsd", data_root="d", options=dict(rois=["floc-faces"]), rois=dict(groups={"FFA": ["FFA-1"]}))
    assert spec.rois.image is None


@pytest.mark.parametrize("groups, words", [
    ({"FFA": ["FFA-9"]}, ["groups['FFA'] names labels ['FFA-9']", "available labels", "FFA-1"]),
    ({"FFA": [2]}, ["name their labels", "FFA-1"]),
])
def test_validate_names_a_label_the_dataset_files_lack(tmp_path, groups, words):
    nsd = write_nsd(tmp_path / "nsd", subjects=(1,), n_sessions=1)
    cfg = yaml.safe_load(CONFIG.read_text())
    cfg["brain"]["rois"]["groups"] = groups
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exp = load_config(path)
    with pytest.raises(ConfigError) as err:
        check_roi_names(exp, tmp_path, str(path), data_root=nsd["root"])
    msg = str(err.value)
    assert all(w in msg for w in words), msg
    cfg["brain"]["rois"]["groups"] = {"FFA": ["FFA-1", "FFA-2"], "EBA": ["EBA"]}
    path.write_text(yaml.safe_dump(cfg))
    check_roi_names(load_config(path), tmp_path, str(path), data_root=nsd["root"])  # known labels pass


def test_surface_labels_are_for_surface_recordings_and_exclusive_with_an_image():
    with pytest.raises(ValueError, match="format movie10"):
        BrainSpec(format="nsd", data_root="d", options=dict(rois=["floc-faces"]),
                  rois=dict(surface_labels=["l.label.gii", "r.label.gii"]))
    with pytest.raises(ValueError, match="not both"):
        BrainSpec(format="movie10", data_root="d", rois=dict(surface_labels=["l.label.gii", "r.label.gii"],
                                                             image="x.nii.gz", table={1: "a"}))
    spec = BrainSpec(format="movie10", data_root="d", rois=dict(surface_labels=["l.label.gii", "r.label.gii"]))
    assert spec.rois.table is None


def test_surface_roi_masks_follow_the_hemisphere_order_and_kept_vertices(tmp_path):
    import numpy as np

    from brainalign.brain.recording import Recording
    from brainalign.pipeline.runner import surface_roi_masks
    from brainalign.testing.fixtures import write_surface_labels

    labels = write_surface_labels(tmp_path, 40, seed=3)  # 40 < 60 parcels: the hemispheres hold different parcels
    kept = np.arange(0, 80, 3)  # columns the loader kept (e.g. constant vertices dropped)
    both = np.concatenate([labels["L"], labels["R"]])[kept]
    left, right = sorted(set(labels["L"][kept[kept < 40]])), sorted(set(labels["R"][kept[kept >= 40] - 40]))
    groups = {"two_left": left[:2], "one_right": right[:1]}
    spec = BrainSpec(format="movie10", data_root="d", rois=dict(
        surface_labels=[str(tmp_path / f"tpl-fsaverage6_hemi-{h}_desc-MMP_dseg.label.gii") for h in "LR"],
        groups=groups)).rois
    rec = Recording(data=np.zeros((4, kept.size), np.float32), runs=np.zeros(4, int), tr=1.0, mask_img=None,
                    space="fsaverage6", n_vertices=(40, 40), meta=dict(kept_vertices=kept))
    masks = surface_roi_masks(spec, rec)
    for roi, members in groups.items():
        assert masks[roi].tolist() == np.isin(both, members).tolist(), roi
    assert not masks["one_right"][: (kept < 40).sum()].any()  # a right-hemisphere parcel: right columns only
    rec.n_vertices = (42, 42)
    with pytest.raises(Exception, match="80 vertices but the recording's mesh has 84"):
        surface_roi_masks(spec, rec)


def test_validate_compares_the_surface_label_files_with_the_mesh(tmp_path):
    from brainalign.testing.fixtures import write_surface_labels

    write_surface_labels(tmp_path / "atlases", 42)
    movies = Path(__file__).resolve().parents[2] / "configs" / "movies_instruction_tuned_video_audio.yaml"
    cfg = yaml.safe_load(movies.read_text())
    cfg["brain"]["data_root"] = str(tmp_path)
    cfg["brain"]["rois"]["surface_labels"] = [str(tmp_path / "atlases" / f"tpl-fsaverage6_hemi-{h}_desc-MMP_dseg.label.gii")
                                              for h in "LR"]
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="hold 84 vertices but the recordings are on a mesh of 81924"):
        check_roi_names(load_config(path), tmp_path, str(path))  # fsaverage6 by default
    cfg["brain"]["options"]["n_vertices"] = [42, 42]
    path.write_text(yaml.safe_dump(cfg))
    check_roi_names(load_config(path), tmp_path, str(path))
    cfg["brain"]["rois"]["groups"]["MFG"] = [999]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="999"):
        check_roi_names(load_config(path), tmp_path, str(path))
