"""`brainalign steer CONFIG`: schema, missing-file report, and an end-to-end planted run."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from brainalign.cli import app
from brainalign.steering import data
from brainalign.steering.config import SteerConfigError, load_steer_config

SEED002 = Path(__file__).resolve().parents[2] / "configs" / "seed002_deductive.yaml"
PLANTED = {"name": "tiny-planted", "seed": 0,
           "planted": {"arch": "qwen2", "hidden_size": 32, "num_layers": 4, "n_items": 40, "n_subjects": 2,
                       "n_voxels": 40},
           "predictivity": {"controls": ["random_features", "untrained"]},
           "nari": {"layers": [2], "max_steps": 10, "controls": ["random_direction", "random_fmri"]}}


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_seed002_config_validates_and_names_every_missing_file(tmp_path):
    cfg = load_steer_config(SEED002)
    assert cfg.brain.subjects == list(data.SEED002_SUBJECTS) and cfg.brain.voxel_selection.top_fraction == 0.1
    assert cfg.finetune.lora.r == 8 and cfg.nari.proj_alpha == 10 and cfg.predictivity.n_folds == 5
    raw = yaml.safe_load(SEED002.read_text())
    raw["brain"]["root"] = str(tmp_path / "ds003076")
    path = _write(tmp_path / "seed002.yaml", raw)
    res = CliRunner().invoke(app, ["steer", str(path), "--validate-only"])
    assert res.exit_code == 2, res.output
    assert "22 of 22 ds003076 input files are missing" in res.output
    assert "sub-1034.mat" in res.output and "events.pkl" in res.output
    for p in data.expected_files(tmp_path / "ds003076"):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    res = CliRunner().invoke(app, ["steer", str(path), "--validate-only"])
    assert res.exit_code == 0 and "all inputs present" in res.output, res.output


def test_bad_steering_configs_are_rejected_with_the_field(tmp_path):
    bad = dict(PLANTED, nari={"los": "cosine"})
    with pytest.raises(SteerConfigError, match="nari.los"):
        load_steer_config(_write(tmp_path / "a.yaml", bad))
    both = dict(PLANTED, brain={"root": "x"}, models=["m"])
    with pytest.raises(SteerConfigError, match="exactly one of"):
        load_steer_config(_write(tmp_path / "b.yaml", both))
    res = CliRunner().invoke(app, ["steer", str(_write(tmp_path / "c.yaml", dict(PLANTED, seed="zero")))])
    assert res.exit_code == 2 and "seed" in res.output


def test_steer_runs_the_planted_study_end_to_end(tmp_path):
    path = _write(tmp_path / "planted.yaml", PLANTED)
    out = tmp_path / "res"
    res = CliRunner().invoke(app, ["steer", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    man = json.loads((out / "manifest.json").read_text())
    pred = pd.read_csv(out / "predictivity.csv")
    nari = pd.read_csv(out / "nari.csv")
    assert set(pred["condition"]) == {"model", "random_features", "untrained"}
    assert len(pred) == 3 * 8 and len(pd.read_csv(out / "predictivity_subjects.csv")) == 2 * 3 * 8
    print(man["predictivity"], man["nari"])
    # the planted subjects read the model's own states: its score beats random features
    assert man["predictivity"]["model"]["score"] > man["predictivity"]["random_features"]["score"]
    assert set(nari["condition"]) == {"fmri", "random_direction", "random_fmri"} and set(nari["subject"]) == {0, 1}
    assert man["nari"]["fmri"]["flipped_fraction"] > man["nari"]["random_direction"]["flipped_fraction"]
    assert man["nari_layers"] == [2] and man["config"]["name"] == "tiny-planted"
    again = CliRunner().invoke(app, ["steer", str(path), "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
