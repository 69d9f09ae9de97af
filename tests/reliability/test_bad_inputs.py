"""A battery of bad inputs, each stopped early with a message that names what is wrong and how to fix it.

Config level: ``brainalign validate`` exits with code 2, without a traceback, and the message names the config
file, the dotted field and the fix. Array level: ``ValueError`` naming the argument and the offending shape or
value.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from brainalign.analysis.metrics import pearson_r
from brainalign.analysis.partition import variance_partition
from brainalign.brain.recording import load_nifti_recording
from brainalign.cli import app
from brainalign.encoding.delays import make_delayed
from brainalign.encoding.estimators import ConstantVoxelWarning, RidgeCV
from brainalign.stimuli.events import read_tr_labels
from brainalign.timing import stimulus_design

from small_experiment import make_small_experiment, one_line


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A valid small experiment (config + trimmed data) to break one field at a time."""
    root = tmp_path_factory.mktemp("bad-inputs")
    cfg = make_small_experiment(root)
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(cfg)])
    assert res.exit_code == 0, res.output  # the unbroken config is fine
    return cfg


def _img(folder: Path) -> tuple[nib.Nifti1Image, nib.Nifti1Image]:
    return nib.load(folder / "data" / "bold.nii.gz"), nib.load(folder / "data" / "mask.nii.gz")


def _write_mask(folder: Path, name: str, data, affine) -> str:
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.uint8), affine), folder / name)
    return name


def _set(cfg: dict, dotted: str, value) -> None:
    node = cfg
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _drop(cfg: dict, dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    del node[last]


def _events_rows(folder: Path, keep: slice | None = None, extra: str = "") -> str:
    rows = (folder / "data" / "attributes.txt").read_text().splitlines()
    name = "events-broken.txt"
    (folder / name).write_text("\n".join(rows[keep] if keep else rows) + "\n" + extra)
    return name


def _symlink_out(folder: Path) -> str:
    outside = folder.parent / (folder.name + "-outside")
    outside.mkdir(exist_ok=True)
    target = outside / "bold.nii.gz"
    if not target.exists():
        target.write_bytes((folder / "data" / "bold.nii.gz").read_bytes())
    link = folder / "data" / "bold-link.nii.gz"
    if not link.exists():
        link.symlink_to(target)
    return "data/bold-link.nii.gz"


# id: (how to break the config dict (gets the folder), dotted field named, words of the fix, extra CLI args)
CONFIG_CASES = {
    "unknown-top-key": (lambda c, d: c.update(seeed=1), "seeed", ["Did you mean 'seed'"]),
    "unknown-nested-key": (lambda c, d: c["brain"].update(trr=2.5), "brain.trr", ["Did you mean 'tr'"]),
    "unknown-key-no-hint": (lambda c, d: c["encoding"].update(zzz=1), "encoding.zzz", ["Remove it"]),
    "missing-required": (lambda c, d: _drop(c, "brain.bold"), "brain.bold", ["required key is missing"]),
    "tr-zero": (lambda c, d: _set(c, "brain.tr", 0), "brain.tr", ["greater than 0"]),
    "tr-not-a-number": (lambda c, d: _set(c, "brain.tr", "fast"), "brain.tr", ["valid number", "'fast'"]),
    "alpha-negative": (lambda c, d: _set(c, "encoding.alphas", [1.0, -3.0]), "encoding.alphas.1",
                       ["greater than 0"]),
    "alphas-empty": (lambda c, d: _set(c, "encoding.alphas", []), "encoding.alphas", ["log-spaced grid"]),
    "delay-negative": (lambda c, d: _set(c, "timing.delays", [-1, 2]), "timing.delays", [">= 0"]),
    "delay-fractional": (lambda c, d: _set(c, "timing.delays", [1.5]), "timing.delays.0", ["valid integer"]),
    "delays-empty": (lambda c, d: _set(c, "timing.delays", []), "timing.delays", ["[1, 2, 3, 4]"]),
    "delays-duplicate": (lambda c, d: _set(c, "timing.delays", [1, 1]), "timing.delays", ["duplicates"]),
    "pca-zero": (lambda c, d: _set(c, "timing.pca_components", 0), "timing.pca_components", ["greater than 0"]),
    "prompts-empty": (lambda c, d: _set(c, "prompts", {}), "prompts", ["at least one template"]),
    "prompt-no-placeholder": (lambda c, d: _set(c, "prompts.action", "a photo"), "prompts",
                              ["no '{stimulus}' placeholder"]),
    "prompt-other-placeholder": (lambda c, d: _set(c, "prompts.action", "{stimulus} {x}"), "prompts",
                                 ["write literal braces"]),
    "labels-empty": (lambda c, d: _set(c, "stimuli.labels", {}), "stimuli.labels", ["map every stimulus code"]),
    "label-blank-name": (lambda c, d: _set(c, "stimuli.labels.3", " "), "stimuli.labels",
                         ["give the text that goes into the prompts"]),
    "models-empty": (lambda c, d: _set(c, "models", []), "models", ["name at least one model"]),
    "model-names-repeat": (lambda c, d: c["models"].append(dict(c["models"][0])), "model names",
                           ["must be unique"]),
    "unprompted-unknown": (lambda c, d: _set(c, "analysis.unprompted", "bare"), "analysis.unprompted",
                           ["choose one of"]),
    "fraction-above-1": (lambda c, d: _set(c, "analysis.responsive_fraction", 1.5),
                         "analysis.responsive_fraction", ["less than or equal to 1"]),
    "permutations-negative": (lambda c, d: _set(c, "analysis.n_permutations", -5), "analysis.n_permutations",
                              ["greater than or equal to 0"]),
    "fdr-q-one": (lambda c, d: _set(c, "analysis.fdr_q", 1.0), "analysis.fdr_q", ["less than 1"]),
    "batch-size-zero": (lambda c, d: _set(c, "models.0.batch_size", 0), "models.0.batch_size",
                        ["greater than 0"]),
    "pooling-unknown": (lambda c, d: _set(c, "models.0.pooling", "max"), "models.0.pooling",
                        ["'mean', 'last', 'cls'"]),
    "outer-cv-unknown": (lambda c, d: _set(c, "encoding.outer_cv", "k-fold"), "encoding.outer_cv",
                         ["leave-one-run-out"]),
    "n-workers-zero": (lambda c, d: _set(c, "encoding.n_workers", 0), "encoding.n_workers",
                       ["greater than or equal to 1"]),
    "blas-threads-zero": (lambda c, d: _set(c, "encoding.blas_threads", 0), "encoding.blas_threads",
                          ["greater than or equal to 1"]),
    "scheduler-not-an-address": (lambda c, d: _set(c, "encoding.scheduler", "localhost"), "encoding.scheduler",
                                 ["not a dask scheduler address", "'tcp://host:8786'", "LocalCluster"]),
    "layer-too-deep": (lambda c, d: _set(c, "models.0.layers", [3, 12]), "models.0.layers",
                       ["has 6 blocks", "valid layers are 0..6"]),
    "pca-above-model-width": (lambda c, d: _set(c, "timing.pca_components", 1000), "timing.pca_components",
                              ["use at most 384"]),
    "unknown-builtin-model": (lambda c, d: _set(c, "models.0.source", "builtin:gpt9"), "models.0.source",
                              ["available"]),
    "reference-typo": (lambda c, d: _set(c, "analysis.reference", "baseline/onof"), "analysis.reference",
                       ["did you mean 'baseline/onoff'"]),
    "reference-layer-not-read": (lambda c, d: _set(c, "analysis.reference", "MiniLM-L6/action/L4"),
                                 "analysis.reference", ["is not a feature space of this run", "choose one of ['MiniLM-L6/action/L3'"]),
    "partition-space-typo": (lambda c, d: c["analysis"].update(partitions=[dict(
        name="p", spaces=["baseline/onoff", "MiniLM-L6/actoin/L6"])]), "analysis.partitions.0.spaces",
        ["did you mean 'MiniLM-L6/action/L6'"]),
    "partition-one-space-config": (lambda c, d: c["analysis"].update(partitions=[dict(
        name="p", spaces=["baseline/onoff"])]), "analysis.partitions.0.spaces", ["at least 2 items"]),
    # data files
    "bold-missing": (lambda c, d: _set(c, "brain.bold", "data/nope.nii.gz"), "brain.bold", ["fix the path"]),
    "events-missing": (lambda c, d: _set(c, "stimuli.events", "nope.txt"), "stimuli.events", ["fix the path"]),
    "bold-not-4d": (lambda c, d: _set(c, "brain.bold", "data/mask.nii.gz"), "brain.bold",
                    ["4-D BOLD series is needed"]),
    "mask-wrong-shape": (lambda c, d: _set(c, "brain.mask", _write_mask(d, "m1.nii.gz", np.ones((4, 4, 1)),
                                                                         _img(d)[1].affine)),
                         "brain.mask", ["(4, 4, 1)", "use a mask on the BOLD grid"]),
    "mask-wrong-affine": (lambda c, d: _set(c, "brain.mask", _write_mask(d, "m2.nii.gz", _img(d)[1].get_fdata(),
                                                                          np.diag([2.0, 2.0, 2.0, 1.0]))),
                          "brain.mask", ["resample the mask"]),
    "mask-empty": (lambda c, d: _set(c, "brain.mask", _write_mask(d, "m3.nii.gz",
                                                                   np.zeros(_img(d)[1].shape), _img(d)[1].affine)),
                   "brain.mask", ["selects no voxel"]),
    "tr-contradicts-header": (lambda c, d: _set(c, "brain.tr", 2.0), "brain.tr", ["2.5 s", "fix brain.tr"]),
    "events-too-short": (lambda c, d: _set(c, "stimuli.events", _events_rows(d, slice(0, 400))),
                         "stimuli.events", ["400 rows", "484 volumes", "cover every volume"]),
    "events-not-integers": (lambda c, d: _set(c, "stimuli.events", _events_rows(d, slice(0, 483), "x y\n")),
                            "stimuli.events", ["two integer columns"]),
    "label-code-unnamed": (lambda c, d: c["stimuli"]["labels"].pop(8), "stimuli.labels", ["[8]", "add them"]),
    "test-run-missing": (lambda c, d: _set(c, "encoding.outer_cv", [7]), "encoding.outer_cv",
                         ["[7] do not exist", "the runs are"]),
    "too-few-training-runs": (lambda c, d: _set(c, "encoding.outer_cv", [0, 1, 2]), "encoding.outer_cv",
                              ["fewer than 2 training runs"]),
    "escape-by-dotdot": (lambda c, d: _set(c, "brain.mask", "data/../experiment.yaml"),
                         "brain.mask", ["outside the data root", "move the file under the data root"],
                         ["--data-root", "{folder}/data"]),
    "escape-by-symlink": (lambda c, d: _set(c, "brain.bold", _symlink_out(d)), "brain.bold",
                          ["symbolic link", "outside the data root"], ["--data-root", "{folder}"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_is_stopped_by_validate(case, study, tmp_path):
    breaker, field, fixes, *extra = CONFIG_CASES[case]
    folder = study.parent
    cfg = yaml.safe_load(study.read_text())
    breaker(cfg, folder)
    path = folder / f"broken-{case}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    args = [a.format(folder=folder) for a in (extra[0] if extra else [])]
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(path), *args])
    msg = one_line(res.stderr)
    assert res.exit_code == 2, (res.exit_code, msg, res.exception)
    assert "Traceback" not in res.output and msg.startswith("error:")
    assert str(path) in msg  # the file
    assert field in msg  # the dotted field
    for fix in fixes:
        assert fix in msg, (fix, msg)


def test_yaml_syntax_error_gives_the_line(tmp_path):
    path = tmp_path / "syntax.yaml"
    path.write_text("name: x\nbrain:\n  bold: a.nii\n  tr: [2.5\nstimuli: {}\n")
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    msg = one_line(res.stderr)
    assert str(path) in msg and "YAML syntax error at line 5" in msg


def test_top_level_list_and_missing_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(path)])
    assert res.exit_code == 2 and "top level must be a mapping" in one_line(res.stderr)
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(tmp_path / "absent.yaml")])
    assert res.exit_code == 2 and "file not found; check the path" in one_line(res.stderr)


def test_debug_shows_the_traceback_instead(study):
    cfg = yaml.safe_load(study.read_text())
    cfg["brain"]["tr"] = 0
    path = study.parent / "debug.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["validate", str(path), "--debug"])
    assert res.exit_code != 0 and type(res.exception).__name__ == "ConfigError"
    assert res.exception.field == "brain.tr" and res.exception.file == str(path)


def test_data_root_accepts_paths_inside_it(study):
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(study), "--data-root", str(study.parent)])
    assert res.exit_code == 0, res.output


def test_trust_remote_code_gives_a_loud_warning(study):
    cfg = yaml.safe_load(study.read_text())
    cfg["models"][0]["trust_remote_code"] = True
    path = study.parent / "remote.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(path)])
    assert res.exit_code == 0
    msg = one_line(res.stderr)
    assert "WARNING: models.0 ('MiniLM-L6') sets trust_remote_code: true" in msg and "Remove it" in msg


def test_memory_preflight_refuses_a_run_that_cannot_fit(study):
    from brainalign.config import load_config
    from brainalign.config import ConfigError
    from brainalign.pipeline.checks import estimate_memory
    from brainalign.pipeline.preflight import preflight

    exp = load_config(study)
    n_runs = preflight(exp, study.parent, str(study), memory_limit=2**50)["n_runs"]
    need = estimate_memory(exp, 484, 530, n_runs=n_runs)
    # the float32 data, one space's float32 held-out predictions and every space's voxel-table rows
    assert need >= 4 * 484 * 530 * 2 + (2 * 2 + 2) * 530 * 64
    info = preflight(exp, study.parent, str(study), memory_limit=need)
    assert info["memory_bytes"] == need
    with pytest.raises(ConfigError, match=r"needs about .* GiB but .* are available; analyse fewer layers"):
        preflight(exp, study.parent, str(study), memory_limit=need // 2)

    # each worker process holds its own interpreter, a copy of the data and one fit: too many workers for the
    # memory that one process would fit in are blamed on encoding.n_workers, not on the models
    many = exp.model_copy(update=dict(encoding=exp.encoding.model_copy(update=dict(n_workers=8))))
    need8 = estimate_memory(many, 484, 530, n_runs=n_runs)
    assert need8 >= need + 8 * (256 * 2**20 + 4 * 484 * 530)
    with pytest.raises(ConfigError, match=r"with 8 worker processes the run needs about .* GiB \(.* in one "
                                          r"process\) .* lower encoding.n_workers") as err:
        preflight(many, study.parent, str(study), memory_limit=need8 // 2)
    assert err.value.field == "encoding.n_workers"
    remote = many.model_copy(update=dict(encoding=many.encoding.model_copy(update=dict(scheduler="tcp://h:8786"))))
    assert estimate_memory(remote, 484, 530, n_runs=n_runs) == need  # a remote cluster's memory is not this machine's


# ---------------------------------------------------------------- array level
rng = np.random.default_rng(0)
X = rng.standard_normal((40, 3))
Y = rng.standard_normal((40, 5))
RUNS = np.repeat(np.arange(4), 10)


def _nan(a, where=(3, 1)):
    a = a.copy()
    a[where] = np.nan
    return a


def _inf(a):
    a = a.copy()
    a[5, 0] = np.inf
    return a


ARRAY_CASES = {
    "ridge-X-1d": (lambda: RidgeCV(cv=2).fit(X[:, 0], Y), r"X must be 2-D .* got shape \(40,\).*reshape\(-1, 1\)"),
    "ridge-X-3d": (lambda: RidgeCV(cv=2).fit(X[:, :, None], Y), r"X must be 2-D .* shape \(40, 3, 1\)"),
    "ridge-length-mismatch": (lambda: RidgeCV(cv=2).fit(X, Y[:30]), r"X has 40 samples but y has 30"),
    "ridge-X-nan": (lambda: RidgeCV(cv=2).fit(_nan(X), Y), r"X contains NaN or inf .* row 3.*impute or drop"),
    "ridge-X-inf": (lambda: RidgeCV(cv=2).fit(_inf(X), Y), r"X contains NaN or inf .* row 5"),
    "ridge-X-empty": (lambda: RidgeCV(cv=2).fit(X[:, :0], Y), r"X is empty \(shape \(40, 0\)\)"),
    "ridge-Y-no-voxels": (lambda: RidgeCV(cv=2).fit(X, Y[:, :0]), r"Y has no voxels"),
    "ridge-alpha-negative": (lambda: RidgeCV(alphas=[1.0, -2.0], cv=2).fit(X, Y), r"alphas must be .*> 0.*-2\.0"),
    "ridge-more-folds-than-runs": (lambda: RidgeCV(cv=5).fit(X, Y, runs=RUNS),
                                   r"cv=5 folds but runs has only 4 distinct runs; use cv <= 4"),
    "ridge-runs-wrong-length": (lambda: RidgeCV(cv=2).fit(X, Y, runs=RUNS[:-1]),
                                r"runs has shape \(39,\); give one run label per sample \(40\)"),
    "ridge-predict-before-fit": (lambda: RidgeCV().predict(X), r"not fitted yet; call fit"),
    "pearson-shape-mismatch": (lambda: pearson_r(Y, Y[:, :4]), r"y_true has shape \(40, 5\) but y_pred has shape"),
    "pearson-one-sample": (lambda: pearson_r(Y[:1], Y[:1]), r"at least 2 samples to score, got 1"),
    "delayed-X-1d": (lambda: make_delayed(X[:, 0], [1]), r"X must be 2-D .* got shape \(40,\)"),
    "delayed-delays-empty": (lambda: make_delayed(X, []), r"delays is empty"),
    "delayed-runs-wrong-length": (lambda: make_delayed(X, [1], RUNS[:10]), r"runs has shape \(10,\) but X has 40"),
    "design-tr-zero": (lambda: stimulus_design(pd.DataFrame(columns=["run", "onset", "duration", "stimulus"]),
                                               RUNS, 0.0, ["a"]), r"tr must be > 0 seconds, got 0\.0"),
    "design-unknown-stimulus": (lambda: stimulus_design(
        pd.DataFrame(dict(run=[0], onset=[0.0], duration=[2.0], stimulus=["cat"])), RUNS, 2.0, ["dog"]),
        r"stimulus 'cat', which has no features"),
    "design-unknown-run": (lambda: stimulus_design(
        pd.DataFrame(dict(run=[9], onset=[0.0], duration=[2.0], stimulus=["dog"])), RUNS, 2.0, ["dog"]),
        r"run 9, which is not in the fMRI runs"),
    "design-event-after-run": (lambda: stimulus_design(
        pd.DataFrame(dict(run=[0], onset=[18.0], duration=[4.0], stimulus=["dog"])), RUNS, 2.0, ["dog"]),
        r"ends at 22\.00 s, after the run's last TR \(20\.00 s\)"),
    "partition-one-space": (lambda: variance_partition({"a": X}, Y, RUNS, [3]), r"spaces has 1 entries"),
    "partition-length-mismatch": (lambda: variance_partition({"a": X[:30], "b": X}, Y, RUNS, [3]),
                                  r"spaces\['a'\] has shape \(30, 3\) but Y has 40 samples"),
    "partition-nan": (lambda: variance_partition({"a": _nan(X), "b": X}, Y, RUNS, [3], n_folds=2),
                      r"spaces\['a'\] contains NaN or inf"),
    "partition-too-few-runs": (lambda: variance_partition({"a": X, "b": X}, Y, RUNS, [1, 2, 3]),
                               r"only 1 training run .* needs at least 2 training runs"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_CASES))
def test_bad_array_input_raises_value_error_naming_it(case):
    call, pattern = ARRAY_CASES[case]
    with pytest.raises(ValueError, match=pattern):
        call()


def test_constant_voxels_are_excluded_with_a_count():
    Yc = Y.copy()
    Yc[:, [1, 3]] = 7.0
    with pytest.warns(ConstantVoxelWarning, match=r"2 of 5 voxels are constant"):
        model = RidgeCV(cv=2).fit(X, Yc)
    assert np.isnan(model.best_alphas_[[1, 3]]).all() and np.isfinite(model.best_alphas_[[0, 2, 4]]).all()


def test_recording_loader_rejects_mismatches(study, tmp_path):
    folder = study.parent
    bold, mask = folder / "data" / "bold.nii.gz", folder / "data" / "mask.nii.gz"
    _, runs = read_tr_labels(folder / "data" / "attributes.txt")
    with pytest.raises(ValueError, match=r"has 484 volumes but the run labels have length 483"):
        load_nifti_recording(bold, mask, runs[:-1], 2.5)
    with pytest.raises(ValueError, match=r"brain.tr=2.0 s but the header .* says 2.5 s"):
        load_nifti_recording(bold, mask, runs, 2.0)
    small = tmp_path / "small-mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 1), np.uint8), nib.load(mask).affine), small)
    with pytest.raises(ValueError, match=r"has shape \(4, 4, 1\) but the BOLD volumes .* are \(40, 20, 1\)"):
        load_nifti_recording(bold, small, runs, 2.5)
    with pytest.raises(FileNotFoundError, match="file not found; check the path"):
        load_nifti_recording(tmp_path / "nope.nii.gz", mask, runs, 2.5)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 0\n2\n")
    with pytest.raises(ValueError, match=r"two integer columns"):
        read_tr_labels(bad)
