"""configs/nsd_instruction_tuned_image.yaml end to end: miniature NSD (exact layout) × tiny stand-ins of its four models.

The config is run as shipped, except for two ``--set`` overrides a miniature needs (one session, fewer
permutations); the fixture plants response = weight × image brightness in every voxel, so the pipeline must
recover |weight| through a real vision model, the real processors, ridge and the statistics.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "nsd_instruction_tuned_image.yaml"
MINI = ["--set", "brain.options.sessions=[1]", "--set", "analysis.n_permutations=100"]


@pytest.fixture(scope="module")
def nsd(tmp_path_factory):
    from brainalign.testing.fixtures import write_nsd

    return write_nsd(tmp_path_factory.mktemp("nsd"), subjects=(1, 2, 5, 7), n_sessions=1)


@pytest.fixture(scope="module")
def nsd_out(nsd, tmp_path_factory, feature_cache):
    out = tmp_path_factory.mktemp("nsd_out") / "results"
    proc = run_cli("run", str(CONFIG), "--data-root", str(nsd["root"]), "--models", "tiny", "--cache",
                   str(feature_cache), "--out", str(out), *MINI)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_every_subject_and_the_group_get_results_and_a_report(nsd_out):
    for sub in ("1", "2", "5", "7"):
        assert (nsd_out / f"sub-{sub}" / "report.html").is_file()
        man = json.loads((nsd_out / f"sub-{sub}" / "manifest.json").read_text())
        assert man["data"]["subject"] == sub
    html = (nsd_out / "report.html").read_text()
    assert "Group results." in html and "(1, 2, 5, 7)" in html  # the group report says its runs are subjects
    assert "<h2>Maps</h2>" not in html and "<h2>Maps</h2>" in (nsd_out / "sub-1" / "report.html").read_text()
    group = pd.read_csv(nsd_out / "comparisons.csv")
    runs = pd.read_parquet(nsd_out / "run_scores.parquet")
    assert sorted(runs["subject"].unique()) == ["1", "2", "5", "7"]
    assert (group["n"] == 4).all()  # paired over the four subjects
    assert group["reference"].iloc[0].startswith("ViT-H/none/L")  # 'L-1' resolved to the tiny ViT's last layer
    spaces = pd.read_csv(nsd_out / "spaces.csv")
    assert set(spaces["model"].dropna()) == {"InstructBLIP", "IDEFICS", "ViT-H", "CLIP"}
    assert set(spaces.loc[spaces.model == "ViT-H", "prompt"]) == {"none"}
    assert len(set(spaces.loc[spaces.model == "IDEFICS", "prompt"])) == 10


def test_planted_brightness_effect_is_recovered_per_voxel(nsd_out, nsd):
    vox = pd.read_parquet(nsd_out / "sub-1" / "voxel_scores.parquet")
    spaces = pd.read_csv(nsd_out / "sub-1" / "spaces.csv")
    last = spaces[spaces.model == "ViT-H"].sort_values("layer")["space"].iloc[-1]
    r = vox[vox.space == last]["r"].to_numpy()
    weight = np.abs(nsd["weight"][1][nsd["nsdgeneral"]])  # voxel columns: nsdgeneral in C order
    assert r.size == weight.size
    assert np.corrcoef(r, weight)[0, 1] > 0.7  # strongly tuned voxels are the well-predicted ones
    assert np.mean(r[weight > 1.0]) > 0.5


def test_instruction_tuned_model_spaces_recover_the_planted_effect(nsd_out, nsd):
    """The planted brightness reaches every instruction x layer space of the two instruction-tuned models
    (images -> tiny InstructBLIP / IDEFICS -> pooled states), not only the vision baselines."""
    vox = pd.read_parquet(nsd_out / "sub-1" / "voxel_scores.parquet")
    weight = np.abs(nsd["weight"][1][nsd["nsdgeneral"]])
    models = sorted(s for s in vox.space.unique() if s.split("/")[0] in ("InstructBLIP", "IDEFICS"))
    assert len(models) == 2 * 10 * 3  # models x instructions x layers
    for space in models:
        r = vox[vox.space == space]["r"].to_numpy()
        assert np.corrcoef(r, weight)[0, 1] > 0.7, space
        assert np.mean(r[weight > 1.0]) > 0.5, space


def test_validate_names_every_missing_file_with_its_source(nsd, tmp_path):
    import shutil

    root = tmp_path / "nsd"
    shutil.copytree(nsd["root"], root)
    beta = next(root.glob("nsddata_betas/ppdata/subj05/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session01.*"))
    beta.unlink()
    (root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5").unlink()
    proc = run_cli("validate", str(CONFIG), "--data-root", str(root), *MINI)
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert "2 of" in err and "files are missing" in err
    assert f"subj05/func1pt8mm/betas_fithrf_GLMdenoise_RR/{beta.name}" in err
    assert "nsd_stimuli.hdf5" in err and "NSD" in err and "s3://natural-scenes-dataset" in err
    ok = run_cli("validate", str(CONFIG), "--data-root", str(nsd["root"]), *MINI)
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_dry_run_counts_forward_passes_from_the_design(nsd):
    proc = run_cli("run", str(CONFIG), "--data-root", str(nsd["root"]), "--dry-run", *MINI)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ids = set()
    for s in (1, 2, 5, 7):
        ids |= set(np.asarray(nsd["trial_nsd_ids"][s]).tolist())
    # 10 prompts for each instruction-tuned model, one prompt-free pass for the baselines
    assert f"InstructBLIP: 10 prompt(s) × 33 layers × 4096 dims; {10 * len(ids):,} forward passes" in proc.stdout
    assert f"ViT-H: 1 prompt(s) × 33 layers × 1280 dims; {len(ids):,} forward passes" in proc.stdout
    real = run_cli("run", str(CONFIG), "--dry-run")  # no data: NSD's published sizes, marked as assumed
    assert real.returncode == 0 and "assumed" in real.stdout and "37,000 forward passes" in real.stdout


def test_streamed_voxel_statistics_equal_those_of_all_kept_predictions(nsd, nsd_out, feature_cache):
    """Issue 19 §2 on this study's data (items, a train/test split: rows never held out): the permutation p and
    FDR computed space by space as the folds finish equal those over every space's kept predictions."""
    from streaming_parity import assert_study_streamed_equals_kept_whole

    vox = assert_study_streamed_equals_kept_whole(CONFIG, MINI[1::2], nsd["root"], feature_cache, "1")
    assert vox["p"].notna().all() and vox["space"].nunique() == 4
