"""`{data_root}` in brain.rois paths: the atlas that ships inside a dataset moves with --data-root."""
from __future__ import annotations

from pathlib import Path

import pytest

from brainalign.config import ConfigError, load_config
from brainalign.study.data import expand_data_root
from test_config import DEMO

GAMEPLAY_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gameplay_action_vs_reasoning.yaml"
ATLAS = "ds004323/derivatives/atlases/tpl-MNI152NLin2009cAsym_res-02_atlas-MMP1_dseg.nii.gz"


def test_rois_paths_follow_the_data_root(tmp_path):
    exp = load_config(GAMEPLAY_CONFIG)
    assert exp.brain.rois.image == "{data_root}/" + ATLAS
    moved = exp.model_copy(update=dict(brain=expand_data_root(exp.brain, GAMEPLAY_CONFIG.parent, tmp_path)))
    assert moved.brain.rois.image == str(tmp_path.absolute() / ATLAS)
    assert moved.brain.rois.table.startswith(str(tmp_path.absolute()) + "/ds004323/")
    # without --data-root: brain.data_root (relative to the config)
    here = exp.model_copy(update=dict(brain=expand_data_root(exp.brain, GAMEPLAY_CONFIG.parent)))
    assert here.brain.rois.image == str((GAMEPLAY_CONFIG.parent / "data").absolute() / ATLAS)
    assert exp.brain.rois.image == "{data_root}/" + ATLAS  # the loaded config itself is unchanged
    # a path without the placeholder stays as written (relative to the config)
    plain = load_config(GAMEPLAY_CONFIG, [f"brain.rois.image=atlas/{Path(ATLAS).name}"])
    assert expand_data_root(plain.brain, GAMEPLAY_CONFIG.parent, tmp_path).rois.image == f"atlas/{Path(ATLAS).name}"


def test_data_root_placeholder_is_refused_where_it_means_nothing():
    with pytest.raises(ConfigError, match="can only start the path"):
        load_config(GAMEPLAY_CONFIG, ["brain.rois.image=atlases/{data_root}/x.nii.gz"])
    with pytest.raises(ConfigError, match="format 'nifti'"):
        load_config(DEMO, ["brain.rois={image: '{data_root}/x.nii.gz', table: {1: a}}"])
