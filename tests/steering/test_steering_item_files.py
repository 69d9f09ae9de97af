"""The authors' own problem files (JSON): reader, errors, and how the steering config selects them.

``item_files/`` is a miniature in the layout of ``pkuxmq/Brain-guided_LLM`` ``data/`` (same keys, fields and
``trial_type`` values; our sentences).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from brainalign.steering.config import SteerConfigError, load_steer_config
from brainalign.steering.item_files import read_item_file
from brainalign.steering.study import check_inputs, eval_sets, validation_items
from brainalign.steering.tasks import item_messages

FILES = Path(__file__).parent / "item_files"


def test_files_in_the_authors_layout_are_read_with_their_validity():
    test = read_item_file(FILES / "deductive_reasoning_data_test.json")
    assert [it.task for it in test] == ["syllogism"] * 3 + ["transitive"] * 3
    assert [it.label for it in test] == [True, True, False] * 2  # 3_true_affirm, 2_true_negate, 2_false_negate
    assert test[1].premises == ("All kets are dark", "All dark things are cold", "Mib is not cold")
    assert test[1].conclusion == "Mib is not dark" and test[1].item_id == "deductive_reasoning_data_test/syllogism-1"
    four = read_item_file(FILES / "deductive_reasoning_data_test_4premises.json")
    assert [len(it.premises) for it in four] == [4, 4] and [it.label for it in four] == [True, False]
    prop = read_item_file(FILES / "deductive_reasoning_data_test_propositional.json")
    assert [it.task for it in prop] == ["propositional"] * 2 and [it.label for it in prop] == [True, False]
    # the prompt carries each sentence with one period, as the fMRI items' (the template adds it)
    user = item_messages(test[1])[-1]["content"]
    assert "1. All kets are dark.\n" in user and user.endswith("Conclusion:\nMib is not dark.") and ".." not in user
    assert "2. jov is warm.\nConclusion" in item_messages(prop[0])[-1]["content"]  # two premises, no "3. nan."
    assert "two premises" in item_messages(prop[0])[0]["content"]


@pytest.mark.parametrize("edit, match", [
    (lambda d: d["syllogisms"][1].pop("conclusion"), r"syllogisms\[1\] lacks the field 'conclusion'"),
    (lambda d: d["transitive"][0].update(trial_type="2_affirm"), r"transitive\[0\]: trial_type '2_affirm' names no"),
    (lambda d: d["syllogisms"][0].pop("premise2"), r"syllogisms\[0\] has the premises \[1, 3\]"),
    (lambda d: d.update(relational=[]), r"keys \['relational'\], which are no reasoning type"),
    (lambda d: d["syllogisms"][2].update(premise1=""), r"syllogisms\[2\]: field 'premise1' is ''"),
])
def test_a_broken_item_file_names_the_item_and_the_field(tmp_path, edit, match):
    data = json.loads((FILES / "deductive_reasoning_data_test.json").read_text())
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=match):
        read_item_file(path)


def test_a_missing_or_unreadable_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json does not exist"):
        read_item_file(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_item_file(tmp_path / "x.json")


def _planted_cfg(tmp_path, files: dict | None):
    raw = {"name": "t", "seed": 0, "planted": {"n_items": 10},
           "finetune": {"validation_items": {"syllogism": 1, "transitive": 1, "seed": 1}},
           "evaluation": {"test": {"syllogism": 1, "transitive": 1, "seed": 2}}}
    if files is not None:
        raw["evaluation"]["files"] = files
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_steer_config(path)


def test_the_config_selects_the_authors_files_besides_the_generated_sets(tmp_path):
    shutil.copytree(FILES, tmp_path / "seed")
    gen = _planted_cfg(tmp_path, None)
    assert [n for n, _, _ in eval_sets(gen, tmp_path)] == ["test"]
    assert all(it.item_id.startswith(("syl1", "tra1")) for it in validation_items(gen, gen.finetune.validation_items))
    cfg = _planted_cfg(tmp_path, {"root": "seed", "validation": "deductive_reasoning_data_val_new.json",
                                  "test": "deductive_reasoning_data_test.json",
                                  "generalisation": ["deductive_reasoning_data_test_4premises.json",
                                                     "deductive_reasoning_data_test_propositional.json"]})
    sets = {n: (items, orders) for n, items, orders in eval_sets(cfg, tmp_path)}
    assert list(sets) == ["test", "file_test", "file_test_4premises", "file_test_propositional"]
    assert len(sets["file_test"][0]) == 6 * 6 and sets["file_test"][1]          # every order of 3 premises
    assert len(sets["file_test_4premises"][0]) == 2 * 24                        # and of 4
    assert len(sets["file_test_propositional"][0]) == 2 * 2
    val = validation_items(cfg, cfg.finetune.validation_items, tmp_path)
    assert [it.item_id for it in val][:1] == ["deductive_reasoning_data_val_new/syllogism-0"] and len(val) == 4
    assert check_inputs(cfg, tmp_path) == ""
    (tmp_path / "seed" / "deductive_reasoning_data_test.json").unlink()
    report = check_inputs(cfg, tmp_path)
    assert "1 item file(s) named in evaluation.files are missing" in report
    assert "evaluation.files.test:" in report and "deductive_reasoning_data_test.json" in report
    assert "4premises" not in report


def test_an_empty_files_section_is_refused(tmp_path):
    with pytest.raises(SteerConfigError, match="evaluation.files names no file"):
        _planted_cfg(tmp_path, {"root": "seed"})
