"""Config: round trip, strict keys with hints, validation errors that name the field."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from brainalign.cli import demo_config_path
from brainalign.config import ConfigError, Experiment, load_config

from conftest import run_cli

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _demo_dict() -> dict:
    return yaml.safe_load(DEMO.read_text())


def test_repo_demo_config_is_the_packaged_one():
    assert DEMO.read_text() == demo_config_path().read_text()


def test_round_trip_preserves_config_and_hash(tmp_path):
    exp = load_config(DEMO)
    p = tmp_path / "again.yaml"
    p.write_text(exp.to_yaml())
    again = load_config(p)
    assert again == exp
    assert again.config_hash() == exp.config_hash()
    changed = again.model_copy(update={"seed": exp.seed + 1})
    assert changed.config_hash() != exp.config_hash()


def test_misspelt_key_names_the_key_and_suggests_the_fix(tmp_path):
    data = _demo_dict()
    data["timing"]["delay"] = data["timing"].pop("delays")
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    msg = str(err.value)
    assert "timing.delay" in msg and "Did you mean 'delays'" in msg and "exp.yaml" in msg


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d["prompts"].update(action="   "), "prompts"),
        (lambda d: d["prompts"].update(action="what to do"), "prompts"),
        (lambda d: d["brain"].update(tr=-2.5), "brain.tr"),
        (lambda d: d["timing"].update(delays=[-1, 2]), "timing.delays"),
        (lambda d: d["encoding"].update(alphas=[0.0, 1.0]), "encoding.alphas.0"),
        (lambda d: d.update(models=[]), "<top level>"),
        (lambda d: d["analysis"].update(unprompted="nope"), "<top level>"),
    ],
)
def test_bad_values_are_rejected_with_their_field(tmp_path, edit, field):
    data = _demo_dict()
    edit(data)
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data))
    assert err.value.field == field, str(err.value)


def test_yaml_syntax_error_reports_line(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("name: x\nbrain: [unclosed\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(p)


def test_yaml_is_parsed_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(p)


def test_cli_validate_accepts_demo_and_rejects_typo_with_exit_2(tmp_path):
    ok = run_cli("validate", str(DEMO))
    assert ok.returncode == 0, ok.stderr
    assert "ridge on encoding.backend 'numpy'" in ok.stdout + ok.stderr  # validate reports where ridge runs
    data = _demo_dict()
    data["brain"]["standardise"] = data["brain"].pop("standardize")
    bad = run_cli("validate", str(_write(tmp_path, data)))
    assert bad.returncode == 2
    assert "brain.standardise" in bad.stderr and "standardize" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_validate_catches_missing_file_and_wrong_tr(tmp_path):
    data = _demo_dict()
    data["brain"]["mask"] = "does-not-exist.nii.gz"
    bad = run_cli("validate", str(_write(tmp_path, data)))
    assert bad.returncode == 2 and "brain.mask" in bad.stderr and "does-not-exist" in bad.stderr
    data = _demo_dict()
    data["brain"]["tr"] = 2.0
    bad = run_cli("validate", str(_write(tmp_path, data)))
    assert bad.returncode == 2 and "brain.tr" in bad.stderr and "2.5" in bad.stderr


def test_experiment_model_forbids_unknown_keys_programmatically():
    data = _demo_dict()
    data["surprise"] = 1
    with pytest.raises(Exception, match="surprise"):
        Experiment.model_validate(data)
