"""`brainalign steer --validate-only` predicts `steer`: what the study would fail on after it has started
(a layer outside a model, a model folder it cannot load, a disk too small for the fine-tuned models) is refused
in seconds, and every raise of ``brainalign.steering`` is listed with what stops it first.

Verdicts as in ``tests/reliability/test_validate_enumerated.py``; ``validate: <case>`` names a case of
:data:`STEER_CASES` below (or a test of this file).
"""
from __future__ import annotations

import shutil
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from brainalign.cli import app

from steering_fixtures import tiny_lm_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from test_validate_enumerated import S, I, U, check_listing, scan_raises  # noqa: E402

Usage = namedtuple("Usage", "total used free")
PLANTED = {"name": "tiny-planted", "seed": 0,
           "planted": {"arch": "qwen2", "hidden_size": 32, "num_layers": 4, "n_items": 40, "n_subjects": 2,
                       "n_voxels": 40},
           "nari": {"layers": [2], "max_steps": 10}}


def steer(*args: str):
    t0 = time.perf_counter()
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["steer", *args])
    return res, " ".join(res.output.split()), time.perf_counter() - t0


def write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def brain_study(tmp_path_factory) -> Path:
    """A ds003076 layout (placeholder files: --validate-only checks presence) and a tiny local model."""
    from brainalign.steering import data

    root = tmp_path_factory.mktemp("steer-validate")
    for p in data.expected_files(root / "ds003076", ["sub-1001"]):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return root


def _brain(folder: Path, models, **sections) -> dict:
    return dict({"name": "mini", "seed": 0, "models": [str(m) for m in models],
                 "brain": {"root": str(folder / "ds003076"), "subjects": ["sub-1001"]}}, **sections)


# id: (config(folder), words of the message)
STEER_CASES = {
    "nari-layer-outside-the-planted-model": (lambda d: dict(PLANTED, nari={"layers": [7]}),
                                             ["nari.layers has [7]", "4 decoder layers", "(0..3)"]),
    "nari-layer-outside-a-local-model": (lambda d: _brain(d, [tiny_lm_dir("qwen2")], nari={"layers": [1, 9]}),
                                         ["nari.layers has [9]", "4 decoder layers of", "choose layers in range"]),
    "model-folder-without-config": (lambda d: (d.joinpath("empty-model").mkdir(exist_ok=True),
                                               _brain(d, [d / "empty-model"]))[1],
                                    ["has no config.json", "give a checkpoint folder"]),
    # cuda:99: a GPU no machine of the suite has (with or without CUDA the message names the field and the fix)
    "loading-device-this-machine-lacks": (lambda d: dict(PLANTED, loading={"device": "cuda:99", "dtype": "bfloat16"}),
                                          ["loading.device='cuda:99'", "GPU"]),
    "item-file-missing": (lambda d: dict(PLANTED, evaluation={"files": {"root": str(d / "nowhere"),
                                                                        "test": "deductive_reasoning_data_test.json"}}),
                          ["1 item file(s) named in evaluation.files are missing", "evaluation.files.test",
                           "deductive_reasoning_data_test.json"]),
}


@pytest.mark.parametrize("case", sorted(STEER_CASES))
def test_steer_validate_only_refuses_what_the_study_would_fail_on(case, brain_study):
    make, words = STEER_CASES[case]
    path = write(brain_study / f"{case}.yaml", make(brain_study))
    res, msg, seconds = steer(str(path), "--validate-only")
    assert res.exit_code == 2, (msg, res.exception)
    assert msg.startswith("error:") and str(path) in msg and "Traceback" not in msg
    for w in words:
        assert w in msg, (w, msg)
    assert seconds < 10
    res, vmsg, _ = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(path)]), None, None
    assert res.exit_code == 2  # `validate` of a steering config is the same check


def test_good_configs_still_validate_and_uncached_hub_models_are_named(brain_study):
    res, msg, _ = steer(str(write(brain_study / "planted.yaml", PLANTED)), "--validate-only")
    assert res.exit_code == 0 and "all inputs present" in msg and "WARNING" not in msg, msg
    cfg = _brain(brain_study, [tiny_lm_dir("qwen2")], nari={"layers": [1, 3]})
    res, msg, _ = steer(str(write(brain_study / "local.yaml", cfg)), "--validate-only")
    assert res.exit_code == 0 and "WARNING" not in msg, msg
    cfg = _brain(brain_study, ["example-org/not-downloaded-7b"])
    res, msg, _ = steer(str(write(brain_study / "hub.yaml", cfg)), "--validate-only")
    assert res.exit_code == 0 and "WARNING: models: 'example-org/not-downloaded-7b'" in msg, msg
    assert "huggingface-cli download example-org/not-downloaded-7b" in msg


def test_steer_refuses_to_start_without_disk_for_the_fine_tuned_models(brain_study, monkeypatch):
    from brainalign.steering.config import load_steer_config
    from brainalign.steering.study import _merged_model_bytes, model_config

    cfg = _brain(brain_study, [tiny_lm_dir("qwen2")], finetune={"ablations": ["random_fmri"]})
    path = write(brain_study / "finetune.yaml", cfg)
    per_model = _merged_model_bytes(model_config(str(tiny_lm_dir("qwen2")), brain_study))
    assert per_model > 4 * 32 * 32 * 4  # at least the layers' weights
    load_steer_config(path)
    need = 3 * per_model  # narf_label, label_only, random_fmri
    out = brain_study / "res"
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 * need, 9 * need, need - 1))
    res, msg, seconds = steer(str(path), "--validate-only", "--out", str(out))
    assert res.exit_code == 2 and "not enough disk space" in msg and "field '--out'" in msg, msg
    assert "3 merged fine-tuned model(s) per model" in msg and "--force-disk" in msg and seconds < 10
    res, msg, _ = steer(str(path), "--out", str(out))  # the run itself stops before loading anything
    assert res.exit_code == 2 and "not enough disk space" in msg and not out.exists()
    res, msg, _ = steer(str(path), "--validate-only", "--out", str(out), "--force-disk")
    assert res.exit_code == 0 and "WARNING: not enough disk space" in msg
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10 * need, 9 * need, need * 3 // 2))
    res, msg, _ = steer(str(path), "--validate-only", "--out", str(out))
    assert res.exit_code == 0 and "WARNING: little disk space" in msg


def test_tiny_models_of_an_unknown_family_are_an_input_error(brain_study):
    res, msg, _ = steer(str(write(brain_study / "unknown.yaml", _brain(brain_study, ["example-org/zebra-7b"]))),
                        "--validate-only", "--models", "tiny", "--cache", str(brain_study / "cache"))
    assert res.exit_code == 2 and "cannot tell the architecture" in msg and "Traceback" not in msg, msg


# --------------------------------------------------------------------------- every raise of brainalign.steering
SCHEMA_PLANTED = "schema"
STEER_ERRORS = {
    "steering/config.py:BrainSection._placeholders": [S],
    "steering/config.py:BrainSection._selection_matches_betas": [S],
    "steering/config.py:BrainSection._disjoint": [S],
    "steering/config.py:SteerConfig._moved_keys": [S],
    "steering/config.py:SteerConfig._one_source": [S, S, S, S, S, S],
    "steering/config.py:ItemFiles._some_file": [S],
    "steering/config.py:load_steer_config": [S, S, S, S, S],  # loading the YAML is validate's first step
    "steering/study.py:model_config": ["validate: model-folder-without-config"],
    "steering/study.py:check_config": ["validate: loading-device-this-machine-lacks",
                                       "validate: nari-layer-outside-a-local-model"],
    "steering/study.py:steering_layers": ["validate: nari-layer-outside-the-planted-model (and local or cached models; a hub "
                                  "model that is not cached is named in a warning: its depth is unknown offline)"],
    "steering/study.py:run_steer": [S],  # the schema refuses nari_general without nari first
    "steering/data.py:_split_run": [S],  # brain.items.runs are checked against the expected files first
    "steering/data.py:read_run_items": ["cannot: the columns and trial types of the events files are read by the "
                                        "loader; --validate-only checks that the files exist"] * 2,
    "steering/data.py:load_ds003076": [S, S, S,
                                       "cannot: the items of each events file are read by the loader",
                                       "cannot: the items of each events file are read by the loader",
                                       "cannot: the betas' shapes are read by the loader",
                                       "cannot: the betas' shapes are read by the loader",
                                       "cannot: the betas' shapes are read by the loader",
                                       "cannot: which voxels are finite is known once the betas are read"],
    "steering/directions.py:intervention_set": [I],
    "steering/directions.py:_brain_loss": [S],
    "steering/directions.py:nari": [I, I],
    "steering/directions.py:middle_layers": [I],
    "steering/directions.py:nari_study": [I, S, I],  # task_labels come from the items
    "steering/encoders.py:_check_xy": [I],
    "steering/encoders.py:fit_encoder": [S],
    "steering/encoders.py:TaskEncoders.predict": [I, I],
    "steering/encoders.py:fit_item_encoder": [I],
    "steering/encoders.py:cv_predictivity": [S],
    "steering/encoders.py:neural_predictivity": [I, I],
    # the study calls it only when every type has 2 x n_folds items (else it logs the skip): internal checks
    "steering/encoders.py:within_type_predictivity": [I, I],
    "steering/encoders.py:deductive_ceiling": ["cannot: the ceiling needs 3 subjects with data; the subjects are "
                                               "listed in the config, but those dropped by the loader are known only "
                                               "once the betas are read"],
    "steering/evaluate.py:evaluate_items": [S],  # evaluation sets are generated from the config's counts
    "steering/evaluate.py:intervened_accuracy": [I],
    "steering/finetune.py:_lora": ["cannot: the attention projections of a model are known once it is loaded "
                                   "(a family without q/k/v/o_proj)"],
    "steering/finetune.py:brain_finetune": [I, I, I, I, I, I, I],  # adapter and item_tasks are set by the study
    "steering/finetune.py:_FullAttention.__init__": ["cannot: the attention parameters of a model are known once it "
                                                     "is loaded"],
    "steering/finetune.py:_encoder_tensors": [I, I],
    "steering/item_files.py:read_item_file": ["validate: item-file-missing"] + ["cannot: an item file's contents are read by the run (validate checks that it exists)"] * 7,
    "steering/item_files.py:_label": ["cannot: an item file's contents are read by the run (validate checks that it exists)"],
    "steering/item_files.py:_text": ["cannot: an item file's contents are read by the run (validate checks that it exists)"],
    "steering/hooks.py:decoder_layers": ["cannot: the decoder layer stack of a model is found once it is loaded"],
    "steering/hooks.py:attention_module": ["cannot: the attention module of a model is found once it is loaded"],
    "steering/hooks.py:LayerHooks.__init__": [S, "validate: nari-layer-outside-a-local-model"],
    "steering/hooks.py:LayerHooks.stacked": [I],
    "steering/hooks.py:seed_layer_stack": [I],
    "steering/models.py:tiny_arch_for": ["validate: tiny-unknown-family (test_tiny_models_of_an_unknown_family_are_"
                                         "an_input_error)"],
    "steering/models.py:build_tiny_causal_lm": [I, I],
    "steering/models.py:load_causal_lm": ["validate: model-folder-without-config",
                                          "cannot: a hub model missing from the local cache is named in a warning "
                                          "(the existing check of the seed's config passes without the weights)"],
    "steering/models.py:answer_token_ids": ["cannot: the tokenizer is loaded with the model"],
    "steering/simulate.py:planted_finetune_study": [U, U],  # the planted worlds of the tests, not `steer`
    "steering/tasks.py:syllogism_valid": [I],
    "steering/tasks.py:_eval": [I],
    "steering/tasks.py:generate_items": [S, S],  # generalisation.n_premises 3..6 and task are Literal/range
    "steering/tasks.py:item_messages": [I],
}


def test_every_steering_raise_is_listed():
    check_listing(scan_raises(("steering",), skip=set()), STEER_ERRORS, set(STEER_CASES) | {"tiny-unknown-family"})
