"""configs/deductive_reasoning_steering.yaml as shipped, on a miniature ds003076, with tiny causal LMs (`steer --models tiny`).

Only sizes change (`--set`: two subjects, fewer steps, epochs and generated problems); every section of the study
runs — predictivity with its controls and ceiling, NARI with its controls, general directions, NARF+Label
fine-tuning with its baseline and ablations, evaluation.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from brainalign.cli import app
from test_steering_ds003076 import SUBJECTS, build_ds003076

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "deductive_reasoning_steering.yaml"
ITEM_FILES = Path(__file__).resolve().parent / "item_files"


def test_deductive_config_runs_every_section_with_tiny_models(tmp_path):
    build_ds003076(tmp_path / "ds003076")
    small = [
        f"brain.root={tmp_path / 'ds003076'}", f"brain.subjects={SUBJECTS}", "brain.excluded_subjects=[]",
        "models=['Qwen/Qwen2-1.5B-Instruct', 'meta-llama/Meta-Llama-3-8B-Instruct']",
        "predictivity.n_folds=3", "predictivity.ceiling=null",
        "nari.layers=[1]", "nari.max_steps=5", "nari.controls=[random_direction]",
        "nari_general.validation={syllogism: 2, transitive: 2, seed: 1}",
        "nari_general.test={syllogism: 2, transitive: 2, seed: 2}", "nari_general.scales={min: 0.0, max: 1.0, step: 0.5}",
        "finetune.max_epoch=1", "finetune.validation_items={syllogism: 2, transitive: 2, seed: 1}",
        "finetune.output=none",
        "evaluation.test={syllogism: 2, transitive: 2, seed: 2}", "evaluation.generalisation=[{n_premises: 4, n: 2}]",
        # the authors' files: the miniature in their layout (validation picks the best epoch; one generalisation file)
        f"evaluation.files.root={ITEM_FILES}",
        "evaluation.files.generalisation=[deductive_reasoning_data_test_propositional.json]",
        "finetune.per_model={}",  # its entries name models that the two below replace
    ]
    args = [a for kv in small for a in ("--set", kv)]
    runner = CliRunner()
    res = runner.invoke(app, ["steer", str(CONFIG), "--validate-only", *args, "--models", "tiny", "--cache",
                              str(tmp_path / "cache")])
    assert res.exit_code == 0 and "all inputs present" in res.output, res.output
    out = tmp_path / "res"
    res = runner.invoke(app, ["steer", str(CONFIG), "--out", str(out), *args, "--models", "tiny", "--cache",
                              str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    steering = pd.read_csv(out / "steering.csv")
    nari = steering[(steering.section == "nari") & (steering.condition == "fmri")]
    # general directions average NARI's successful offsets: present exactly when NARI flipped an item
    assert ("nari_general" in set(steering["section"])) == bool(nari["n_flipped"].sum() > 0)
    assert {"nari", "finetune"} <= set(steering["section"])
    # the two checkpoints are two families: a tiny Qwen2 and a tiny Llama
    assert {Path(m).name for m in steering["model"]} == {"causal-qwen2-seed0", "causal-llama-seed0"}
    ft = steering[steering.section == "finetune"]
    assert {"narf_label", "label_only", "narf", "random_fmri", "labels_as_fmri"} <= set(ft["condition"])
    assert not ft[ft.condition == "narf"]["control"].any()  # pure NARF is a method, like NARF+Label
    # every arm on the generated sets and on the authors' test and generalisation files
    assert set(ft["set"]) == {"test", "deductive_4premises", "file_test", "file_test_propositional"}
    assert (ft[ft.set == "file_test"]["n_items"] == 6 * 6).all()  # the miniature's 6 problems x 6 premise orders
    nari_rows = pd.read_csv(out / "nari.csv")
    assert set(nari_rows["task"]) == {"syllogism", "transitive"}  # one encoder and NARI run per reasoning type
    assert re.search(r">\s*narf\s*<", (out / "report.html").read_text())  # a row of its own in the report
    d = steering[steering.section != "nari"]
    assert ((d.accuracy_after - d.accuracy_before) * d.n_items).round(6).equals((d.n_flipped - d.n_broken).astype(float))
    pred = pd.read_csv(out / "predictivity.csv")
    assert {"model", "random_features", "untrained"} <= set(pred["condition"])
