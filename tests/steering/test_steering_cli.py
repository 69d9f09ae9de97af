"""`brainalign steer CONFIG`: schema, missing-file report, and an end-to-end planted run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from brainalign.cli import app
from brainalign.steering import data
from brainalign.steering.config import SteerConfigError, load_steer_config

DEDUCTIVE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "deductive_reasoning_steering.yaml"
ITEM_FILES = Path(__file__).resolve().parent / "item_files"
PLANTED = {"name": "tiny-planted", "seed": 0,
           "planted": {"arch": "qwen2", "hidden_size": 32, "num_layers": 4, "n_items": 40, "n_subjects": 2,
                       "n_voxels": 40},
           "predictivity": {"controls": ["random_features", "untrained"]},
           "nari": {"layers": [2], "max_steps": 10, "controls": ["random_direction", "random_fmri"]},
           "nari_general": {"scales": {"min": 0.0, "max": 1.0, "step": 0.5},
                            "validation": {"syllogism": 2, "transitive": 2, "seed": 1},
                            "test": {"syllogism": 3, "transitive": 3, "seed": 2}},
           "finetune": {"lr": 1.0e-3, "brain_weight": 1.0, "max_epoch": 1, "ablations": ["random_fmri", "labels_as_fmri"],
                        "validation_items": {"syllogism": 1, "transitive": 1, "seed": 1}},
           "evaluation": {"test": {"syllogism": 3, "transitive": 3, "seed": 2},
                          "generalisation": [{"n_premises": 4, "n": 1}, {"task": "propositional", "n": 2}]}}
STEERING_COLUMNS = ["model", "section", "condition", "set", "control", "n_items", "accuracy_before", "accuracy_after",
                    "n_flipped", "n_broken", "detail"]


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_deductive_config_validates_and_names_every_missing_file(tmp_path):
    cfg = load_steer_config(DEDUCTIVE_CONFIG)
    assert cfg.brain.subjects == list(data.DS003076_SUBJECTS) and cfg.brain.voxel_selection.top_fraction == 0.1
    assert cfg.finetune.lora.r == 8 and cfg.nari.proj_alpha == 10 and cfg.predictivity.n_folds == 5
    raw = yaml.safe_load(DEDUCTIVE_CONFIG.read_text())
    raw["brain"]["root"] = str(tmp_path / "ds003076")
    path = _write(tmp_path / "deductive.yaml", raw)
    res = CliRunner().invoke(app, ["steer", str(path), "--validate-only"])
    assert res.exit_code == 2, res.output
    assert "60 of 60 ds003076 input files are missing" in res.output
    assert "sub-1034.mat" in res.output and "sub-1001_task-Syllogisms_run-01_events.tsv" in res.output
    res = CliRunner().invoke(app, ["validate", str(path)])  # `validate` recognises a steering config
    assert res.exit_code == 2 and "60 of 60 ds003076 input files are missing" in res.output, res.output
    for p in data.expected_files(tmp_path / "ds003076"):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    res = CliRunner().invoke(app, ["steer", str(path), "--validate-only"])
    # the authors' JSON sets (evaluation.files) are inputs too: named with their field until they are there
    assert res.exit_code == 2 and "6 item file(s) named in evaluation.files are missing" in res.output, res.output
    assert "evaluation.files.generalisation[3]" in res.output and "60 of 60" not in res.output
    (tmp_path / "data" / "Brain-guided_LLM" / "data").mkdir(parents=True)
    for p in cfg.evaluation.files.paths(tmp_path).values():
        p.write_text((ITEM_FILES / "deductive_reasoning_data_test.json").read_text())
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
    # 3 conditions over all items + the model within each of the 2 reasoning types, 8 representations each
    assert len(pred) == (3 + 2) * 8 and len(pd.read_csv(out / "predictivity_subjects.csv")) == 2 * (3 + 2) * 8
    assert set(pred.loc[pred.condition != "model", "task"]) == {"all"}
    assert set(pred.loc[pred.condition == "model", "task"]) == {"all", "syllogism", "transitive"}
    assert set(man["predictivity"]["model"]["within_types"]) == {"syllogism", "transitive"}
    print(man["predictivity"], man["nari"])
    # the planted subjects read the model's own states: its score beats random features
    assert man["predictivity"]["model"]["score"] > man["predictivity"]["random_features"]["score"]
    assert set(nari["condition"]) == {"fmri", "random_direction", "random_fmri"} and set(nari["subject"]) == {0, 1}
    assert man["nari"]["fmri"]["flipped_fraction"] > man["nari"]["random_direction"]["flipped_fraction"]
    assert man["nari_layers"] == [2] and man["config"]["name"] == "tiny-planted"
    page = (out / "report.html").read_text()  # `steer` writes its report as `run` does (issue: it did not)
    assert "tiny-planted" in page and "<img" in page
    # every section the config asks for, in one tidy summary table
    st = pd.read_csv(out / "steering.csv")
    assert list(st.columns) == STEERING_COLUMNS
    assert {(r.section, r.condition) for r in st.itertuples()} == {
        ("nari", "fmri"), ("nari", "random_direction"), ("nari", "random_fmri"),
        ("nari_general", "general_direction"), ("nari_general", "random_direction"),
        ("finetune", "narf_label"), ("finetune", "label_only"), ("finetune", "random_fmri"),
        ("finetune", "labels_as_fmri")}
    assert not st.query("condition == 'narf_label' or (section != 'finetune' and condition in ('fmri', "
                        "'general_direction'))")["control"].any()
    assert st.query("condition in ('label_only', 'random_fmri', 'labels_as_fmri', 'random_direction')")["control"].all()
    ft = st[st["section"] == "finetune"]
    assert set(ft["set"]) == {"test", "deductive_4premises", "propositional_3premises"}
    # evaluation over all premise orders: 6 test problems x 3! orders, 2 four-premise problems x 4! orders
    assert ft.set_index(["condition", "set"]).loc[("narf_label", "test"), "n_items"] == 6 * 6
    assert ft.set_index(["condition", "set"]).loc[("narf_label", "deductive_4premises"), "n_items"] == 2 * 24
    # before = the untouched model, identical for every condition; flips account for the change in accuracy
    assert ft.groupby("set")["accuracy_before"].nunique().max() == 1
    gen = st[st["section"] != "nari"]  # (NARI rows count intervened units, not evaluated problems)
    np.testing.assert_allclose(gen["accuracy_after"] - gen["accuracy_before"],
                               (gen["n_flipped"] - gen["n_broken"]) / gen["n_items"], atol=1e-9)
    items = pd.read_parquet(out / "evaluation_items.parquet")
    assert set(items["condition"]) == {"base", "narf_label", "label_only", "random_fmri", "labels_as_fmri"}
    acc = items.groupby(["condition", "set"])["correct"].mean()
    for r in ft.itertuples():
        assert acc[(r.condition, r.set)] == pytest.approx(r.accuracy_after)
    epochs = pd.read_csv(out / "finetune_epochs.csv")
    assert set(epochs["condition"]) == set(ft["condition"]) and (epochs.query("condition == 'label_only'")["brain_loss"] == 0).all()
    assert (out / "finetuned" / "planted" / "narf_label" / "model.safetensors").is_file()
    sweep = pd.read_csv(out / "nari_general_sweep.csv")
    assert list(sweep["scale"]) == [0.0, 0.5, 1.0] and sweep["best"].sum() == 1
    assert set(man["tables"]) == {"predictivity.csv", "predictivity_subjects.csv", "nari.csv", "nari_general_sweep.csv",
                                  "finetune_epochs.csv", "steering.csv", "evaluation_items.parquet"}
    again = CliRunner().invoke(app, ["steer", str(path), "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in again.output
    (out / "stale.txt").write_text("from an older run")
    cfg2 = dict(PLANTED, nari_general=None, finetune=None, predictivity=None)
    forced = CliRunner().invoke(app, ["steer", str(_write(tmp_path / "p2.yaml", cfg2)), "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "nari.csv", "report.html", "steering.csv"]


def test_old_prompts_value_is_accepted_with_a_warning():
    """`prompts: seed002` (the value's old name) still loads, as `deductive-reasoning`, and says so."""
    assert load_steer_config(DEDUCTIVE_CONFIG).prompts == "deductive-reasoning"
    with pytest.warns(FutureWarning, match="'seed002' is renamed 'deductive-reasoning'"):
        old = load_steer_config(DEDUCTIVE_CONFIG, ["prompts=seed002"])
    assert old.prompts == "deductive-reasoning"
    with pytest.raises(SteerConfigError, match="prompts"):
        load_steer_config(DEDUCTIVE_CONFIG, ["prompts=seed003"])


def test_config_fields_that_cannot_be_honoured_are_refused():
    """roi / voxel_selection describe how the betas were made: with the seed's derivative they cannot change;
    controls_models is not a key (the untrained control is in predictivity, base checkpoints are models)."""
    with pytest.raises(SteerConfigError, match="voxel_selection differs from the seed's derivative"):
        load_steer_config(DEDUCTIVE_CONFIG, ["brain.voxel_selection.top_fraction=0.2"])
    with pytest.raises(SteerConfigError, match="roi differs"):
        load_steer_config(DEDUCTIVE_CONFIG, ["brain.roi=md"])
    own = load_steer_config(DEDUCTIVE_CONFIG, ["brain.betas=derivatives/mine/top-20%/{task}/{subject}.mat",
                                               "brain.voxel_selection.top_fraction=0.2", "brain.roi=md"])
    assert own.brain.voxel_selection.top_fraction == 0.2 and own.brain.roi == "md"
    with pytest.raises(SteerConfigError, match="controls_models is not a key.*predictivity.controls"):
        load_steer_config(DEDUCTIVE_CONFIG, ["controls_models=[untrained]"])


def test_brain_weight_and_max_epoch_per_model():
    """finetune.per_model: the authors' brain weight 0.01 for Qwen2-1.5B and 50 epochs for the 70B models; a name
    that is no model of the study is refused (a typo would otherwise be ignored silently)."""
    from brainalign.steering.plan import _item_passes
    from brainalign.steering.study import finetune_consistent

    cfg = load_steer_config(DEDUCTIVE_CONFIG)
    ft = cfg.finetune
    assert ft.for_model("Qwen/Qwen2-1.5B-Instruct").brain_weight == 0.01
    assert ft.for_model("Qwen/Qwen2-1.5B-Instruct").max_epoch == ft.max_epoch == 100
    assert ft.for_model("meta-llama/Llama-3.3-70B-Instruct").max_epoch == 50
    assert ft.for_model("Qwen/Qwen2-7B-Instruct") == ft and ft.n_arms == 5  # narf+label, label-only, NARF, 2 ablations
    small = load_steer_config(DEDUCTIVE_CONFIG, ["evaluation.generalisation=[]", "evaluation.files=null",
                                                 "evaluation.test={syllogism: 2, transitive: 2, seed: 2}",
                                                 "nari_general=null"])
    passes = _item_passes(small, ["Qwen/Qwen2-7B-Instruct", "Qwen/Qwen2-72B-Instruct"], Path("."), [])
    assert passes["Qwen/Qwen2-72B-Instruct"]["finetune"] * 2 == passes["Qwen/Qwen2-7B-Instruct"]["finetune"]
    with pytest.raises(SteerConfigError, match=r"finetune.per_model has \['Qwen/Qwen2-1.5B-instruct'\], which is not"):
        load_steer_config(DEDUCTIVE_CONFIG, ["finetune.per_model={Qwen/Qwen2-1.5B-instruct: {brain_weight: 0.01}}"])
    with pytest.raises(SteerConfigError, match="max_epoch"):
        load_steer_config(DEDUCTIVE_CONFIG, ["finetune.per_model={Qwen/Qwen2-7B-Instruct: {max_epoch: 0}}"])
    # fit_consistent_questions: finetune follows nari unless it says otherwise
    assert not finetune_consistent(cfg)
    assert finetune_consistent(load_steer_config(DEDUCTIVE_CONFIG, ["nari.fit_consistent_questions=true"]))
    assert not finetune_consistent(load_steer_config(DEDUCTIVE_CONFIG, ["nari.fit_consistent_questions=true",
                                                                        "finetune.fit_consistent_questions=false"]))
