"""`validate` predicts `run`: every error a run could hit after it starts computing is found first, in seconds.

- every cross-reference to a feature space (partitions, reference, controls, coupling, ROIs) is resolved against
  the names the run will fit, derived by the same functions the run names its spaces with;
- the voxels the loader will exclude (non-finite, constant within a run) are reported with counts;
- free disk space at the feature cache, TMPDIR and beside --out is compared with the dry-run's estimates.

The list of every error the pipeline can raise after the features stage, each with the case below that
validate rejects or the reason it cannot be predicted, is in ``test_validate_enumerated.py``.
"""
from __future__ import annotations

import shutil
import time
from collections import namedtuple
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from brainalign.cli import app

from small_experiment import make_small_experiment, one_line

REPO = Path(__file__).resolve().parents[2]
Usage = namedtuple("Usage", "total used free")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("validate-predicts-run")
    cfg = make_small_experiment(root)
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(cfg)])
    assert res.exit_code == 0, res.output
    return cfg


def validate(path: Path, *args: str):
    """``brainalign validate`` in this process: (result, message on one line, seconds)."""
    t0 = time.perf_counter()
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["validate", str(path), *args])
    return res, one_line(res.stderr), time.perf_counter() - t0


def write(folder: Path, name: str, cfg: dict) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# --------------------------------------------------------------------------- config breakers
def _controls(cfg, **kw):
    cfg["analysis"]["controls"] = dict(dict(prompts=["scrambled", "neutral"], features=["stimulus_shuffled",
                                                                                      "gaussian"], layer=3), **kw)


def _partition(cfg, *spaces, control=None):
    spec = dict(name="p", spaces=list(spaces))
    if control:
        spec["control"] = control
    cfg["analysis"]["partitions"] = [spec]


def _coupling(cfg, **kw):
    cfg["prompts"].update({f"task{i}": f"{w} a {{stimulus}}" for i, w in enumerate(("name", "draw", "touch",
                                                                                     "hold"))})
    cfg["analysis"]["coupling"] = dict(dict(layer=1.0, n_permutations=10), **kw)


def _second_model(cfg, layers):
    cfg["models"].append(dict(cfg["models"][0], name="M2", layers=layers))


def _rois(cfg, folder: Path, shape=None, **kw):
    mask = nib.load(folder / "data" / "mask.nii.gz")
    inside = np.asarray(mask.dataobj) != 0
    labels = np.zeros(shape or inside.shape, np.int16)
    if shape is None:
        labels[inside] = 1 + (np.cumsum(inside.ravel())[inside.ravel()] % 2).reshape(-1)  # two interleaved labels
    nib.save(nib.Nifti1Image(labels, mask.affine), folder / "labels.nii.gz")
    cfg["brain"]["rois"] = dict(dict(image="labels.nii.gz", table={1: "left", 2: "right"}), **kw)


def _interleaved_runs(cfg, folder: Path):
    rows = (folder / "data" / "attributes.txt").read_text().splitlines()
    runs = [r.split()[1] for r in rows]
    first = runs.index("1")  # run 0 ends here: put its last 5 rows after run 1's first row
    rows = rows[:first - 5] + rows[first:first + 1] + rows[first - 5:first] + rows[first + 1:]
    (folder / "events-interleaved.txt").write_text("\n".join(rows) + "\n")
    cfg["stimuli"]["events"] = "events-interleaved.txt"


def _single_tr_run(cfg, folder: Path):
    rows = (folder / "data" / "attributes.txt").read_text().splitlines()
    last = rows[-1].split()
    rows[-1] = f"{last[0]} 9"
    (folder / "events-short-run.txt").write_text("\n".join(rows) + "\n")
    cfg["stimuli"]["events"] = "events-short-run.txt"


def _flat_bold(cfg, folder: Path):
    img = nib.load(folder / "data" / "bold.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.int16), img.affine, img.header), folder / "flat.nii.gz")
    cfg["brain"]["bold"] = "flat.nii.gz"


# id: (breaker(cfg, folder), dotted field named, words of the message and its fix)
PREDICTED = {
    # the case: a partition naming a layer the run never reads (run failed after every fit)
    "partition-layer-not-fitted": (lambda c, d: _partition(c, "MiniLM-L6/action/L99", "baseline/onoff"),
                                   "analysis.partitions.0.spaces",
                                   ["'MiniLM-L6/action/L99' is not a feature space of this run",
                                    "did you mean 'MiniLM-L6/action/L", "choose one of"]),
    "partition-control-space-with-controls-off": (
        lambda c, d: _partition(c, "MiniLM-L6/action/L6", "baseline/onoff",
                                control={"MiniLM-L6/action/L6": "MiniLM-L6/action/L6~stimulus_shuffled"}),
        "analysis.partitions.0.control", ["'MiniLM-L6/action/L6~stimulus_shuffled' is not a feature space"]),
    # with controls on, only the control spaces the run makes are names (the old check let any 'MiniLM-L6/...' pass)
    "control-space-at-another-layer": (lambda c, d: (_controls(c), _partition(c, "MiniLM-L6/action~scrambled/L6",
                                                                              "baseline/onoff")),
                                       "analysis.partitions.0.spaces",
                                       ["did you mean 'MiniLM-L6/action~scrambled/L3'"]),
    "gaussian-control-of-another-width": (lambda c, d: (_controls(c), _partition(c, "MiniLM-L6/~gaussian-512d/L3",
                                                                                 "baseline/onoff")),
                                          "analysis.partitions.0.spaces", ["did you mean 'MiniLM-L6/~gaussian-384d/L3'"]),
    "equivalence-space-not-fitted": (
        lambda c, d: c["analysis"].update(equivalence=[dict(name="e", a=["MiniLM-L6/action/L99"],
                                                            b=["baseline/onoff"], margin=0.01)]),
        "analysis.equivalence.0.a", ["'MiniLM-L6/action/L99' is not a feature space of this run", "choose one of"]),
    "reference-not-fitted": (lambda c, d: c["analysis"].update(reference="MiniLM-L6/action/L4"),
                             "analysis.reference", ["is not a feature space of this run", "choose one of"]),
    "controls-layer-too-deep": (lambda c, d: _controls(c, layer=12), "analysis.controls.layer",
                                ["has 6 blocks", "the control layer must be in 0..6"]),
    "scramble-one-word-prompt": (lambda c, d: (_controls(c), c["prompts"].update(action="{stimulus}!")),
                                 "analysis.controls.prompts", ["fewer than two distinct words", "Reword the prompt"]),
    "scramble-placeholder-twice": (lambda c, d: (_controls(c), c["prompts"].update(action="a {stimulus} or {stimulus}")),
                                   "analysis.controls.prompts", ["more than once", "Reword the prompt"]),
    "in-context-k-too-large": (lambda c, d: _controls(c, in_context=dict(k=8)), "analysis.controls.in_context.k",
                               ["need at least k+1=9 stimuli", "the data have 8", "lower k"]),
    "in-context-examples-too-few": (lambda c, d: _controls(c, in_context=dict(k=2, examples=["face"])),
                                    "analysis.controls.in_context.examples", ["has 1 names but k=2"]),
    "coupling-layer-not-fitted": (lambda c, d: _coupling(c, layer=0.2), "analysis.coupling.layer",
                                  ["is layer 1", "will not be fitted", "choose a layer listed in models[MiniLM-L6]"]),
    "coupling-model-without-layers": (lambda c, d: (_second_model(c, [0]), _coupling(c, model="M2",
                                                                                     text_model="MiniLM-L6")),
                                      "analysis.coupling.model", ["no fitted layer above the embeddings"]),
    "roi-group-label-unknown": (lambda c, d: _rois(c, d, groups={"g": ["middle"]}), "brain.rois.groups.g",
                                ["'middle'", "available labels"]),
    "roi-hierarchy-unknown": (lambda c, d: _rois(c, d, hierarchy=["left", "nowhere"]), "brain.rois.hierarchy",
                              ["['nowhere']", "available"]),
    "roi-image-wrong-shape": (lambda c, d: _rois(c, d, shape=(4, 4, 1)), "brain.rois.image",
                              ["differs from the mask shape", "resample the atlas"]),
    "block-length-too-long": (lambda c, d: c["analysis"].update(n_permutations=10, block_length=200),
                              "analysis.block_length", ["no two exchangeable blocks", "shorter analysis.block_length"]),
    "runs-not-contiguous": (_interleaved_runs, "stimuli.events", ["must be contiguous", "Sort the rows run by run"]),
    "run-of-one-tr": (_single_tr_run, "stimuli.events", ["runs [9]", "single TR"]),
    "every-voxel-excluded": (_flat_bold, "brain.bold", ["nothing is left to fit"]),
}


@pytest.mark.parametrize("case", sorted(PREDICTED))
def test_validate_rejects_what_run_would_hit_later(case, study):
    breaker, field, words = PREDICTED[case]
    folder = study.parent
    cfg = yaml.safe_load(study.read_text())
    breaker(cfg, folder)
    path = write(folder, f"predicted-{case}", cfg)
    res, msg, seconds = validate(path)
    assert res.exit_code == 2, (res.exit_code, msg, res.exception)
    assert "Traceback" not in res.output and msg.startswith("error:")
    assert str(path) in msg and f"field '{field}'" in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    assert seconds < 10, seconds


def test_rois_on_surface_data_are_refused_before_the_files_are_looked_for(tmp_path):
    """Movie10 data are fsaverage vertices: ``run`` stopped at the ROI stage (after the features); validate stops
    at once, even before it lists the missing dataset files."""
    movie = next(p for p in sorted((REPO / "configs").glob("*.yaml"))
                 if (yaml.safe_load(p.read_text()).get("brain") or {}).get("format") == "movie10")
    cfg = yaml.safe_load(movie.read_text())
    cfg["brain"]["rois"] = dict(image="{data_root}/labels.nii.gz", table={1: "V1"})
    path = write(tmp_path, "movie-rois", cfg)
    res, msg, seconds = validate(path, "--data-root", str(tmp_path))
    assert res.exit_code == 2 and "field 'brain.rois'" in msg and "remove brain.rois" in msg, msg
    assert "files are missing" not in msg and seconds < 10


def test_the_planned_names_are_the_names_the_run_fits(study, tmp_path):
    """The names validate accepts are exactly the spaces the run makes (model × prompt × layer, baselines and every
    kind of control, at a control layer the run does not read otherwise), because both come from the same plan."""
    from brainalign import pipeline
    from brainalign.config import load_config
    from brainalign.features.store import FeatureStore
    from brainalign.pipeline.checks import PlannedSpaces, check_models, model_shapes
    from brainalign.pipeline.controls import control_spaces
    from brainalign.brain.recording import Recording

    cfg = yaml.safe_load(study.read_text())
    cfg["models"][0]["layers"] = [1, 6]
    _controls(cfg, in_context=dict(k=2), layer=0.5)  # layer 3: not read by the model
    path = write(study.parent, "all-controls", cfg)
    exp = load_config(path)
    _, layers = check_models(exp, path.parent)
    shapes = model_shapes(exp, path.parent)
    planned = PlannedSpaces(exp, layers, shapes)

    class Features:  # stands in for MiniLM: the right width, no weights
        def embed_cached(self, texts, layers, store, pool_from=None):
            return np.random.default_rng(len(texts)).standard_normal((len(texts), len(layers), shapes["MiniLM-L6"][1]))

        def count_tokens(self, texts):
            return [len(t.split()) for t in texts]

    stimuli = [exp.stimuli.labels[k] for k in sorted(exp.stimuli.labels)]
    runs = np.repeat(np.arange(4), 8)
    design = np.tile(np.eye(8, dtype=np.float32), (4, 1))
    rec = Recording(data=np.zeros((32, 3), np.float32), runs=runs, tr=2.5,
                    mask_img=nib.Nifti1Image(np.ones((3, 1, 1), np.uint8), np.eye(4)))
    data = pipeline.StudyData(recording=rec, events=None, stimuli=stimuli, design=design)
    ex = Features()
    feats = {"MiniLM-L6": {p: ex.embed_cached(stimuli, layers["MiniLM-L6"], None) for p in exp.prompts}}
    meta = {"MiniLM-L6": dict(layers=layers["MiniLM-L6"], n_layers=shapes["MiniLM-L6"][0], n_tokens={})}
    spaces = pipeline.build_feature_spaces(data, feats, meta, exp.models, exp.analysis.baselines, exp.seed)
    extra, _ = control_spaces(exp, data, feats, meta, FeatureStore(tmp_path), extractor_for=lambda s: ex)
    fitted = {sp.name for sp in spaces + extra}
    assert fitted == planned.exact
    kinds = {"~scrambled", "~neutral", "~icl2", "~stimulus_shuffled", "~gaussian-384d", "/L3"}
    assert all(any(k in n for n in fitted) for k in kinds), sorted(fitted)
    assert planned.known("MiniLM-L6/action/L-1") and not planned.known("MiniLM-L6/action/L-3")


def test_hub_models_of_unknown_depth_are_checked_by_model_and_prompt(study):
    """Without the model's config.json the layers are unknown: names with any layer pass, other prompts do not."""
    from brainalign.config import load_config
    from brainalign.config import ConfigError
    from brainalign.pipeline.checks import check_space_names

    exp = load_config(study)
    exp.analysis.controls = None
    exp.analysis.reference = "MiniLM-L6/action/L17"
    check_space_names(exp, {}, str(study), {})
    exp.analysis.reference = "MiniLM-L6/actoin/L17"
    with pytest.raises(ConfigError, match=r"not a feature space .* choose one of .*'MiniLM-L6/action/L<layer>'"):
        check_space_names(exp, {}, str(study), {})


# --------------------------------------------------------------------------- voxels and stimuli run will drop
def _bold_with(folder: Path, name: str, edit) -> str:
    img = nib.load(folder / "data" / "bold.nii.gz")
    data = np.asarray(img.dataobj).astype(np.float32)
    inside = np.argwhere(np.asarray(nib.load(folder / "data" / "mask.nii.gz").dataobj) != 0)
    edit(data, inside)
    nib.save(nib.Nifti1Image(data, img.affine, img.header), folder / name)
    return name


def test_validate_reports_the_voxels_run_will_exclude(study):
    """The issue's case: a voxel NaN in every TR. validate says what run's loader will say (same rule, same count),
    naming the file and the fix; a voxel constant in one run only is counted for that run."""
    folder = study.parent
    cfg = yaml.safe_load(study.read_text())

    def nan_and_flat(data, inside):
        x, y, z = inside[0]
        data[x, y, z, :] = np.nan  # NaN in every TR
        x, y, z = inside[1]
        data[x, y, z, 121 * 2:121 * 3] = 5.0  # constant within the third run only (4 runs of 121 TRs)

    cfg["brain"]["bold"] = _bold_with(folder, "bold-bad-voxels.nii.gz", nan_and_flat)
    path = write(folder, "bad-voxels", cfg)
    res, msg, seconds = validate(path)
    assert res.exit_code == 0, msg
    assert "WARNING:" in msg and "bold-bad-voxels.nii.gz: 2 mask voxels are constant within a run or non-finite" in msg
    assert "(2 of 530; run 0: 1, run 1: 1, run 2: 2, run 3: 1)" in msg, msg
    assert "Fix" in msg and "(brain.bold)" in msg and "brain.mask" in msg
    assert "530 voxels (2 excluded by `run`" in msg and seconds < 10

    # the loader excludes exactly these
    from brainalign.brain.recording import load_nifti_recording
    from brainalign.stimuli.events import read_tr_labels

    _, runs = read_tr_labels(folder / "data" / "attributes.txt")
    with pytest.warns(UserWarning, match=r"2 mask voxels .* \(2 of 530; run 0: 1, run 1: 1, run 2: 2, run 3: 1\)"):
        rec = load_nifti_recording(folder / cfg["brain"]["bold"], folder / "data" / "mask.nii.gz", runs, 2.5)
    assert rec.dropped_voxels == 2


def test_validate_names_stimuli_that_no_tr_shows(study):
    folder = study.parent
    cfg = yaml.safe_load(study.read_text())
    cfg["stimuli"]["labels"][9] = "violin"
    res, msg, _ = validate(write(folder, "unseen-label", cfg))
    assert res.exit_code == 0, msg
    assert "WARNING: stimuli.labels ['9: violin'] occur in no row of" in msg and "Remove them" in msg


def test_clean_data_give_no_warning(study):
    res, msg, seconds = validate(study)
    assert res.exit_code == 0 and "WARNING" not in msg and "excluded" not in msg, msg
    assert seconds < 10


# --------------------------------------------------------------------------- disk
def _free(monkeypatch, free_bytes: int) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 * free_bytes, 9 * free_bytes, free_bytes))


def _plan_bytes(study: Path, out: Path | None, cache: Path) -> int:
    from brainalign.config import load_config
    from brainalign.pipeline.preflight import disk_needs, study_plan

    exp = load_config(study)
    return sum(n.bytes for n in disk_needs(exp, study_plan(exp, study.parent), out, cache))


def test_run_refuses_to_start_without_the_disk_space_it_needs(study, tmp_path, monkeypatch):
    """The dry-run's estimates against the free space: too little stops run at once (exit 2) naming the folder,
    the need and the free space; --force-disk starts anyway."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    need = _plan_bytes(study, out, cache)
    assert need > 0
    _free(monkeypatch, need // 3)
    t0 = time.perf_counter()
    res = CliRunner(env={"COLUMNS": "400"}).invoke(app, ["run", str(study), "--out", str(out), "--cache", str(cache)])
    msg = one_line(res.stderr)
    assert res.exit_code == 2, (msg, res.exception)
    assert msg.startswith("error:") and str(study) in msg and "not enough disk space" in msg
    assert str(tmp_path) in msg and "--force-disk" in msg and "are free on the file system of" in msg
    assert "MiB" in msg and time.perf_counter() - t0 < 10
    assert not out.exists() and not any(tmp_path.glob(".out*"))  # nothing was started

    # validate says the same (with --out; without it, the cache alone)
    res, vmsg, _ = validate(study, "--out", str(out), "--cache", str(cache))
    assert res.exit_code == 2 and "not enough disk space" in vmsg and "field '--cache'" in vmsg

    res, vmsg, _ = validate(study, "--out", str(out), "--cache", str(cache), "--force-disk")
    assert res.exit_code == 0 and "WARNING: not enough disk space" in vmsg


def test_disk_under_twice_the_estimate_warns(study, tmp_path, monkeypatch):
    out, cache = tmp_path / "out", tmp_path / "cache"
    need = _plan_bytes(study, out, cache)
    _free(monkeypatch, int(need * 1.5))
    res, msg, _ = validate(study, "--out", str(out), "--cache", str(cache))
    assert res.exit_code == 0 and "WARNING: little disk space" in msg and "less than 2× the estimate" in msg, msg
    _free(monkeypatch, need * 3)
    res, msg, _ = validate(study, "--out", str(out), "--cache", str(cache))
    assert res.exit_code == 0 and "disk space" not in msg, msg


def test_disk_needs_name_each_place_and_add_up_on_one_file_system(study, tmp_path, monkeypatch):
    """Cache, TMPDIR (memory-mapped predictions) and --out on one file system add up; each is named."""
    from brainalign.config import ConfigError, load_config
    from brainalign.pipeline.preflight import check_disk, disk_needs, study_plan

    exp = load_config(study)
    exp.encoding.predictions_in_memory_gib = 0.0  # predictions go to TMPDIR
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    needs = disk_needs(exp, study_plan(exp, study.parent), tmp_path / "out", tmp_path / "cache")
    assert [n.moved_by for n in needs] == ["--cache", "TMPDIR", "--out"]
    assert needs[1].folder == tmp_path / "tmp"
    plan = study_plan(exp, study.parent)
    assert needs[1].bytes == plan.n_rows * plan.n_voxels * 4  # one space's float32 predictions at a time
    total = sum(n.bytes for n in needs)
    _free(monkeypatch, total - 1)  # each alone would fit
    assert all(n.bytes < total - 1 for n in needs)
    with pytest.raises(ConfigError, match="the run writes about .* \\(.*cache.*tmp.*out.*\\)"):
        check_disk(needs)
    assert check_disk(needs, force=True)[0].startswith("not enough disk space")
