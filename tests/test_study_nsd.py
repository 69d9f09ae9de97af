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

    # 41 grey levels: ~41 distinct images read through each model instead of ~250 (the same planted truth)
    return write_nsd(tmp_path_factory.mktemp("nsd"), subjects=(1, 2, 5, 7), n_sessions=1, n_levels=41)


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
    assert set(spaces["model"].dropna()) == {"InstructBLIP", "InstructBLIP-random", "IDEFICS", "ViT-H", "CLIP"}
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


def test_nsd_rois_come_from_the_dataset_files_and_rank_the_prompts(nsd_out, nsd):
    """Rows 14-16 read ROIs: brain.rois without an image joins the labels of NSD's own ROI files (early visual from
    prf-visualrois, EBA, FFA-1 + FFA-2, PPA), per subject and over subjects, with the best prompt per ROI."""
    rois = pd.read_csv(nsd_out / "sub-1" / "roi_scores.csv")
    assert set(rois["roi"]) == {"early_visual", "EBA", "FFA", "PPA"}
    # ROI sizes are the fixture's label volumes inside nsdgeneral
    inside = nsd["nsdgeneral"]
    want = {"EBA": (nsd["rois"]["floc-bodies"][inside] == 1).sum(),
            "FFA": np.isin(nsd["rois"]["floc-faces"][inside], [2, 3]).sum(),
            "early_visual": np.isin(nsd["rois"]["prf-visualrois"][inside], [1, 2, 3, 4, 5, 6]).sum()}
    got = rois.groupby("roi")["n_voxels"].max()
    for roi, n in want.items():
        assert got[roi] == n, roi
    prompts = pd.read_csv(nsd_out / "sub-1" / "roi_prompts.csv")
    assert set(prompts["model"]) == {"InstructBLIP", "IDEFICS"}  # ViT-H, CLIP read no prompt; the random model one
    assert (prompts.groupby(["model", "layer", "roi"])["is_best"].sum() >= 1).all()
    group = pd.read_csv(nsd_out / "roi_prompts.csv")
    assert (group["n"] == 4).all()  # subjects are the units of the group table
    assert 'alt="score per ROI and prompt"' in (nsd_out / "report.html").read_text()


def test_scores_are_normalised_by_nsd_ncsnr_per_voxel_and_roi(nsd_out, nsd):
    """Row 14: the ceiling is NSD's own ncsnr for 3 averaged repeats (sqrt(NC), correlation scale); the fixture's
    ncsnr = |weight| / 0.5, so the ceiling is known in closed form."""
    ceiling = pd.read_csv(nsd_out / "sub-1" / "ceiling.csv") if (nsd_out / "sub-1" / "ceiling.csv").exists() else \
        pd.read_parquet(nsd_out / "sub-1" / "ceiling.parquet")
    snr = nsd["ncsnr"][1][nsd["nsdgeneral"]].astype(np.float64)
    want = np.sqrt(snr**2 / (snr**2 + 1 / 3))
    np.testing.assert_allclose(ceiling.sort_values("voxel")["ceiling_r"].to_numpy(), want, rtol=1e-5)
    per_roi = pd.read_csv(nsd_out / "sub-1" / "roi_normalised.csv")
    assert set(per_roi["roi"]) == {"early_visual", "EBA", "FFA", "PPA"}
    roi_ceil = pd.read_csv(nsd_out / "sub-1" / "roi_ceilings.csv").set_index("roi")
    ffa = np.isin(nsd["rois"]["floc-faces"][nsd["nsdgeneral"]], [2, 3])
    assert roi_ceil.loc["FFA", "ceiling"] == pytest.approx(want[ffa].mean(), rel=1e-5)
    assert "Ceiling-normalised scores per ROI" in (nsd_out / "sub-1" / "report.html").read_text()



def test_random_init_control_and_partitions_per_roi(nsd_out):
    """Row 17: the random-init InstructBLIP is compared with the ViT-H reference over subjects and paired with the
    trained one; row 16: the IC-vs-IU2 partition is reported per ROI."""
    group = pd.read_csv(nsd_out / "comparisons.csv")
    rand = group[group.space.str.startswith("InstructBLIP-random/IC/")]
    assert len(rand) >= 1 and (rand["n"] == 4).all()
    ctl = pd.read_csv(nsd_out / "sub-1" / "controls.csv")
    assert (ctl["control_kind"] == "untrained").any()
    by_roi = pd.read_csv(nsd_out / "sub-1" / "partition_rois.csv")
    assert {"IC-vs-IU1", "IC-vs-IU2"} == set(by_roi["partition"])
    assert {"EBA", "early_visual"} <= set(by_roi["roi"])


def test_group_and_subject_reports_read_at_a_glance_in_chromium(nsd_out):
    """The NSD reports in a real browser (full-page screenshots in test-artefacts/screenshots/nsd-*.png): rows 14-17
    each have their section, tables are excerpts, the headline names a fitted space."""
    from chromium import open_report

    rows = ["ROI scores", "Best prompt per ROI", "Variance partitioning"]
    open_report(nsd_out / "report.html", screenshot="nsd-group").assert_reads_at_a_glance(rows)
    subject = open_report(nsd_out / "sub-1" / "report.html", screenshot="nsd-sub-1")
    subject.assert_reads_at_a_glance([*rows, "Ceiling-normalised scores per ROI", "Maps"])
