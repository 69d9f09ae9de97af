"""configs/gameplay_action_vs_reasoning.yaml end to end: miniature ds004323 (BIDS + fMRIPrep + plays export + rendered
frames) × tiny stand-ins of Qwen2.5-VL / InternVL3 / UI-TARS and the pixel / motion-energy / random baselines.

The fixture plants response = weight × screen brightness (2 TRs late) in every voxel, on top of a trans_x
confound; the pipeline must regress the confound, place the frames on the TR grid from the plays' timestamps,
read the frames through the baselines and the models, and recover |weight| per voxel. The dump's RL regressors
(DDQN per action step by timestamp, EMPA per TR) carry the brightness with noise: row 4's table must find the
VLM spaces higher than both, and the regressors' rows must land on their own subject, run and TR.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gameplay_action_vs_reasoning.yaml"
SUBJECTS = ("01", "02")


def mini_overrides() -> list[str]:
    """What a 2-subject, 3-run, 40-TR miniature needs (the real study: 31 subjects × 6 runs × 283 TRs)."""
    sets = [
        'brain.subjects=["01", "02"]',
        "brain.options.runs=[1, 2, 3]",
        # 40 TRs per run cannot carry nilearn's 29 default confounds; the fixture plants only trans_x
        "brain.options.confounds_strategy=null",
        "brain.options.confounds=[trans_x]",
        "stimuli.max_frames=1",
        "stimuli.size=32",
        "timing.pca_components=8",  # the tiny models have 64 dims
        "analysis.n_permutations=100",
    ]
    sets += [f"models.{i}.prompts=[action, reasoning, neutral]" for i in range(3)]  # 3 of the 11 prompts
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    from brainalign.testing.gameplay_fixture import write_ds004323_study

    return write_ds004323_study(tmp_path_factory.mktemp("s0") / "data", subjects=SUBJECTS, n_runs=3, n_trs=40)


@pytest.fixture(scope="module")
def gameplay_out(mini, tmp_path_factory, feature_cache):
    out = tmp_path_factory.mktemp("gameplay_out") / "results"
    proc = run_cli("run", str(CONFIG), "--data-root", str(mini["root"]), "--models", "tiny", "--cache",
                   str(feature_cache), "--out", str(out), *mini_overrides(),
                   env=dict(OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def test_frames_are_placed_on_the_tr_grid_from_the_plays(mini):
    """design @ (per-frame brightness) is the planted per-TR brightness: timing, layout and averaging agree."""
    from brainalign.config import load_config
    from brainalign.study.load import load_subject

    exp = load_config(CONFIG, [s for s in mini_overrides()[1::2]])
    data = load_subject(exp.brain, exp.stimuli, exp.encoding, exp.seed, "02", CONFIG.parent, mini["root"])
    assert data.recording.data.shape == (3 * 40, int(mini["mask"]["02"].sum()))
    frames = data.load_stimuli()
    assert len(frames) == len(data.stimuli) == data.design.shape[1] == 3 * 3 * 11  # one kept frame per game TR
    brightness = np.array([f.astype(float).mean() / 255 / 0.9 for f in frames])  # colour = level × (1, .9, .8)
    per_tr = np.asarray(data.design @ brightness)
    planted = np.concatenate([mini["brightness"][("02", r)] for r in (1, 2, 3)])
    assert np.allclose(per_tr, planted, atol=0.02)
    assert data.stimuli[0].startswith("run-01/vgfmri3_") and "_p0_f" in data.stimuli[0]


def _regressor_rows(mini, model: str, subject: str = "02", **option_changes):
    """The study's stimuli of ``subject`` and the per-stimulus rows of the config's regressor model ``model``."""
    from brainalign.config import load_config
    from brainalign.features.frame_baselines import frame_baseline_features
    from brainalign.study.load import load_subject

    exp = load_config(CONFIG, [s for s in mini_overrides()[1::2]])
    spec = next(m for m in exp.models if m.name == model)
    spec = spec.model_copy(update=dict(options={**spec.options, **option_changes}))
    data = load_subject(exp.brain, exp.stimuli, exp.encoding, exp.seed, subject, CONFIG.parent, mini["root"])
    feats, meta = frame_baseline_features(spec, exp.stimuli, exp.seed, data)
    return data, feats["none"][:, 0, :], meta


def test_ddqn_rows_land_on_the_frames_of_their_action_step(mini):
    """Row 4's DDQN baseline: each kept frame gets the q-values of its own action step (timestamp match on the
    plays' clock), from the documents of its own subject and run. Catches a swapped subject/run in ``where``, an
    off-by-one in the timestamp lookup and a unit error."""
    data, F, meta = _regressor_rows(mini, "DDQN")
    assert F.shape == (len(data.stimuli), 4) and meta["frames_without_row"] == 0
    ev = data.events
    want = np.stack([mini["ddqn"][("02", int(r), int(p), int(k))] for r, p, k in zip(ev.run, ev.play, ev.frame_index)])
    np.testing.assert_allclose(F, want, atol=1e-6)
    from brainalign.config import DataError

    with pytest.raises(DataError, match=r"models\[DDQN\]: no document of .* is subject 01 run 3 .*'subj_id': 3"):
        _regressor_rows(mini, "DDQN", where={"subj_id": "{run}", "run_id": "{subject}"}, subject="01")


def test_empa_rows_land_on_their_tr(mini):
    """Row 4's EMPA baseline (one row per TR, no time field): the TR-wise space design @ F is the run's row of
    that TR wherever a TR shows frames (zero elsewhere, like every frame space). A shifted TR fails here."""
    data, F, _ = _regressor_rows(mini, "EMPA")
    per_tr = np.asarray(data.design @ F)
    planted = np.concatenate([mini["empa"][("02", r)] for r in (1, 2, 3)])
    shown = np.asarray(data.design.sum(1)).ravel() > 0
    assert shown.sum() == 3 * 3 * 11
    np.testing.assert_allclose(per_tr[shown], planted[shown], atol=1e-6)
    assert np.all(per_tr[~shown] == 0)


def test_regressor_options_are_checked_before_any_compute(mini, tmp_path):
    """validate names the model, the field and the fix for a missing regressor file and for a subject or run the
    file does not hold; a bad option fails when the config is loaded."""
    root = tmp_path / "data"
    shutil.copytree(mini["root"], root)
    ddqn = next((root / "ds004323" / "behavior" / "dump").glob("*/dqn_regressors_25M.bson"))
    ddqn.unlink()
    proc = run_cli("validate", str(CONFIG), "--data-root", str(root), *mini_overrides())
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "models[DDQN]" in err and "models.6.options.path" in err
    assert "dqn_regressors_25M.bson does not exist" in err and "tar xzf" in err
    proc = run_cli("validate", str(CONFIG), "--data-root", str(mini["root"]), *mini_overrides(),
                   "--set", 'models.7.options.where={"subject": "{run}", "run": "{subject}"}')
    err = " ".join(proc.stderr.split())  # swapped: subject 01's run 3 asks for subject 3
    assert proc.returncode == 2 and "models[EMPA]" in err and "subject 01 run 3" in err
    assert "models.7.options.where" in err and "'sub-01', 'sub-02'" in err
    proc = run_cli("validate", str(CONFIG), "--data-root", str(mini["root"]), *mini_overrides(),
                   "--set", "models.6.options.time_field=null")
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "models[DDQN]" in err and "time_unit='ms' needs time_field" in err
    proc = run_cli("validate", str(CONFIG), "--data-root", str(mini["root"]), *mini_overrides(),
                   "--set", "models.6.options.field=q_value")
    err = " ".join(proc.stderr.split())  # a misspelt field: named with a document's fields
    assert proc.returncode == 2 and "models[DDQN], subject 01 run 1: field='q_value' is missing" in err
    assert "models.6.options.field" in err and "q_values" in err


def test_planted_brightness_effect_is_recovered_per_voxel(gameplay_out, mini):
    for sub in SUBJECTS:
        vox = pd.read_parquet(gameplay_out / f"sub-{sub}" / "voxel_scores.parquet")
        r = vox[vox.space == "Pixels/none/L0"]["r"].to_numpy()
        weight = np.abs(mini["weight"][sub])  # voxel columns: brain mask in C order
        assert r.size == weight.size
        assert np.corrcoef(r, weight)[0, 1] > 0.6  # strongly tuned voxels are the well-predicted ones
        assert np.mean(r[weight > 1.0]) > 0.5
        rand = vox[vox.space == "Random/none/L0"]["r"].to_numpy()
        assert np.mean(r[weight > 1.0]) - np.mean(rand[weight > 1.0]) > 0.4  # the chance control does not


def test_instruction_tuned_model_spaces_recover_the_planted_effect(gameplay_out, mini):
    """The planted brightness reaches the models' spaces too (frames -> tiny VLM/LAM -> pooled states -> TR grid),
    for every model, prompt and layer, not only the prompt-free baselines; the random baseline stays at chance."""
    for sub in SUBJECTS:
        vox = pd.read_parquet(gameplay_out / f"sub-{sub}" / "voxel_scores.parquet")
        weight = np.abs(mini["weight"][sub])
        rand = vox[vox.space == "Random/none/L0"]["r"].to_numpy()
        models = sorted(s for s in vox.space.unique() if s.split("/")[0] in ("Qwen2.5-VL", "InternVL3", "UI-TARS"))
        assert len(models) == 3 * 3 * 2  # models x prompts x layers
        for space in models:
            r = vox[vox.space == space]["r"].to_numpy()
            assert np.corrcoef(r, weight)[0, 1] > 0.6, space
            assert np.mean(r[weight > 1.0]) - np.mean(rand[weight > 1.0]) > 0.3, space


def test_vlm_spaces_beat_the_rl_baselines_in_row_4s_table(gameplay_out, mini):
    """Row 4 of methods.md §10 on the planted miniature: the RL regressors carry the planted brightness with noise,
    the VLM spaces see it in the frames. rl_baselines.csv pairs every model space with both RL baselines over the 2
    subjects and says the VLM is higher in both; the RL baselines stand well above the random control, which
    they do only with their own runs' rows (each run reading the next run's documents: DDQN 0.29 and EMPA 0.25
    above Random instead of 0.55 and 0.43; not zero, since any frame space carries the frames-vs-no-frames step;
    a one-TR shift would be absorbed by the FIR delays, so the placement tests above pin the TR); the widths
    compared are stated (the regressors have 4 and 3 columns, fewer than timing.pca_components = 8: kept whole,
    not matched)."""
    rl = pd.read_csv(gameplay_out / "rl_baselines.csv")
    spaces = pd.read_csv(gameplay_out / "sub-01" / "spaces.csv")
    n_model_spaces = int(spaces.model.isin(["Qwen2.5-VL", "InternVL3", "UI-TARS"]).sum())
    assert len(rl) == 2 * n_model_spaces and set(rl["baseline"]) == {"DDQN", "EMPA"}
    assert (rl["n"] == 2).all() and set(rl["b"]) == {"DDQN/none/L0", "EMPA/none/L0"}
    assert set(rl["n_components_b"]) == {4, 3} and (rl["n_components_a"] == 8).all() and not rl["matched"].any()
    last = spaces[spaces.model == "Qwen2.5-VL"]["layer"].max()
    vlm = rl[rl.a == f"Qwen2.5-VL/action/L{last}"].set_index("baseline")
    for base in ("DDQN", "EMPA"):
        assert vlm.loc[base, "mean_diff"] > 0.05 and vlm.loc[base, "n_better"] == 2, base
    groups = pd.read_csv(gameplay_out / "comparisons.csv").set_index("space")  # vs the Pixels reference, per subject
    scores = pd.read_parquet(gameplay_out / "run_scores.parquet").groupby("space")["mean_r_responsive"].mean()
    for base, least in (("DDQN/none/L0", 0.42), ("EMPA/none/L0", 0.34)):  # halfway between aligned and not
        assert scores[base] - scores["Random/none/L0"] > least, base
        assert base in groups.index
    page = (gameplay_out / "report.html").read_text()
    assert 'alt="Models against the RL baselines"' in page and 'id="rl_baselines"' in page


def test_every_subject_gets_results_partitions_and_roi_tables(gameplay_out):
    spaces = pd.read_csv(gameplay_out / "sub-01" / "spaces.csv")
    assert set(spaces["model"]) == {"Qwen2.5-VL", "InternVL3", "UI-TARS", "Pixels", "MotionEnergy", "Random", "DDQN",
                                    "EMPA"}
    assert set(spaces.loc[spaces.model == "Pixels", "prompt"]) == {"none"}
    frame_baselines = spaces.model.isin(["Pixels", "MotionEnergy", "Random", "DDQN", "EMPA"])
    assert set(spaces.loc[frame_baselines, "kind"]) == {"baseline"} and set(spaces.loc[~frame_baselines, "kind"]) == {"model"}
    layers = pd.read_csv(gameplay_out / "sub-01" / "layers.csv")  # layer curves are the models' only
    assert set(layers["model"]) == {"Qwen2.5-VL", "InternVL3", "UI-TARS"}
    assert set(spaces.loc[spaces.model == "UI-TARS", "prompt"]) == {"action", "reasoning", "neutral"}
    for sub in SUBJECTS:
        man = json.loads((gameplay_out / f"sub-{sub}" / "manifest.json").read_text())
        assert man["data"]["subject"] == sub
    part = pd.read_csv(gameplay_out / "sub-01" / "partition.csv")
    assert set(part["partition"]) == {f"{m}-action-vs-reasoning" for m in ("Qwen2.5-VL", "InternVL3", "UI-TARS")}
    last = {m: spaces[spaces.model == m]["layer"].max() for m in ("Qwen2.5-VL", "UI-TARS")}
    names = set(part["space"])
    for m, layer in last.items():  # 'L-1' resolved to the tiny model's last layer read
        assert {f"{m}/action/L{layer}", f"{m}/reasoning/L{layer}", "shared"} <= names
    rois = pd.read_csv(gameplay_out / "sub-01" / "roi_scores.csv")
    assert rois["roi"].nunique() == 12 and "SMA" in set(rois["roi"])
    by_roi = pd.read_csv(gameplay_out / "sub-01" / "partition_rois.csv")  # row 2: partitions per ROI, motor included
    assert set(by_roi["roi"]) == set(rois["roi"]) and set(by_roi["partition"]) == set(part["partition"])
    asym = pd.read_csv(gameplay_out / "partition_roi_asymmetry.csv")  # paired over the 2 subjects (where both have
    assert asym["n"].max() == 2 and (asym["n"] == 2).mean() > 0.8  # voxels of positive joint R² in the ROI)
    assert {"SMA", "early_visual"} <= set(asym["roi"])
    assert set(asym.loc[asym.partition == "UI-TARS-action-vs-reasoning", "a"]) == {f"UI-TARS/action/L{last['UI-TARS']}"}
    assert 'alt="variance partition per ROI"' in (gameplay_out / "report.html").read_text()
    hier = pd.read_csv(gameplay_out / "sub-01" / "roi_hierarchy.csv")
    assert set(hier["prompt"]) == {"action", "reasoning"}  # gains over the neutral prompt, along the hierarchy
    group = pd.read_csv(gameplay_out / "comparisons.csv")
    assert (group["n"] == 2).all() and (group["reference"] == "Pixels/none/L0").all()


def test_reports_name_the_best_model_and_the_neutral_reference_prompt(gameplay_out):
    """Issue: the reports opened with 'No model feature space was fitted' (the Pixels reference, a kind: baseline
    model, was taken for the best model), the per-run figure showed the reference alone, and the ROI peaks were a
    table of one row per model × prompt × ROI."""
    import re

    for folder in (gameplay_out, gameplay_out / "sub-01"):
        page = (folder / "report.html").read_text()
        headline = re.search(r"Headline\.</strong>(.*?)</p>", page, re.S).group(1)
        assert "No model feature space" not in headline
        best = re.search(r"The best model feature space, ([^,]+),", headline).group(1)
        assert best.split("/")[0] in ("Qwen2.5-VL", "InternVL3", "UI-TARS") and "Pixels/none/L0" in headline
        assert "the reference prompt <code>neutral</code>" in page
    sub = (gameplay_out / "sub-01" / "report.html").read_text()
    assert 'id="roi-peaks"' not in sub and 'alt="peak layer per ROI and model"' in sub


def test_validate_names_missing_frames_and_runs(mini, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(mini["root"], root)
    frame = next((root / "ds004323" / "derivatives" / "frames" / "sub-02" / "run-02").glob("*_p1_f00003.png"))
    frame.unlink()
    bold = next((root / "ds004323" / "derivatives" / "fmriprep" / "sub-01" / "func").glob("*run-03*preproc_bold.nii.gz"))
    bold.unlink()
    sets = mini_overrides()
    proc = run_cli("validate", str(CONFIG), "--data-root", str(root), *sets)
    assert proc.returncode == 2
    err = " ".join(proc.stderr.split())
    assert "2 of" in err and "files are missing" in err
    assert f"derivatives/frames/sub-02/run-02/{frame.name}" in err and "VGDL" in err
    assert bold.name in err and "fMRIPrep" in err
    (root / "ds004323" / "behavior" / "plays.json").unlink()  # without the plays no frame can be named
    proc = run_cli("validate", str(CONFIG), "--data-root", str(root), *sets)
    assert proc.returncode == 2 and "plays.json" in proc.stderr and "mongoexport" in " ".join(proc.stderr.split())
    ok = run_cli("validate", str(CONFIG), "--data-root", str(mini["root"]), *mini_overrides())
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_dry_run_counts_frames_from_the_plays_and_bold_headers(mini):
    proc = run_cli("run", str(CONFIG), "--data-root", str(mini["root"]), "--dry-run", *mini_overrides())
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = 3 * 3 * 11  # kept frames per subject: one per game TR (max_frames 1), 3 games × 11 TRs × 3 runs
    assert f"per subject {3 * 40} rows × {int(mini['mask']['01'].sum())} voxels, {frames} stimuli" in proc.stdout
    # hub checkpoints: published sizes (29 layers read with 'all'; layers [0.5, 1.0] → 2); frames are per subject
    assert f"Qwen2.5-VL: 3 prompt(s) × 2 layers × 3584 dims; {2 * frames * 3:,} forward passes" in proc.stdout
    assert "Pixels: 1 prompt(s) × 1 layers × 256 dims" in proc.stdout
    assert f"ridge fits: {2 * (3 * 3 * 2 + 5) * 3:,}" in proc.stdout  # subjects × spaces × leave-one-run-out folds
    assert "DDQN: 1 prompt(s) × 1 layers × 4 dims" in proc.stdout  # read from the regressor file
    assert "assumed" not in proc.stdout
    real = run_cli("run", str(CONFIG), "--dry-run")  # no data: ds004323's documented sizes, marked as assumed
    assert real.returncode == 0, real.stderr[-2000:]
    per_subject = 6 * 3 * 92 * 4  # runs × games × TRs per game × max_frames
    assert "assumed" in real.stdout and f"{31 * per_subject * 11:,} forward passes" in real.stdout


def test_streamed_voxel_statistics_equal_those_of_all_kept_predictions(mini, gameplay_out, feature_cache):
    """Issue 19 §2 on this study's data: the block-permutation p, FDR and ROI scores computed space by space as
    the folds finish equal those over every space's kept predictions, bit for bit."""
    from streaming_parity import assert_study_streamed_equals_kept_whole

    sets = mini_overrides()[1::2]
    vox = assert_study_streamed_equals_kept_whole(CONFIG, sets, mini["root"], feature_cache, "01")
    assert vox["p"].notna().all() and vox["space"].nunique() == 4


def test_vlm_vs_lam_equivalence_is_tested_per_subject_and_over_subjects(gameplay_out):
    """Row 5 of methods.md §10: the config's TOST runs on the fitted (resolved) spaces, over held-out runs in each
    subject and over subjects in the group, with its figure in both reports."""
    spaces = pd.read_csv(gameplay_out / "sub-01" / "spaces.csv")
    last = {m: spaces[spaces.model == m]["layer"].max() for m in ("Qwen2.5-VL", "InternVL3", "UI-TARS")}
    for folder, unit, n in ((gameplay_out / "sub-01", "run", 3), (gameplay_out, "subject", 2)):
        eq = pd.read_csv(folder / "equivalence.csv")
        assert len(eq) == 1 and eq["name"].iloc[0] == "VLM-vs-LAM"
        row = eq.iloc[0]
        assert row["unit"] == unit and row["n"] == n and row["metric"] == "mean_r" and row["margin"] == 0.01
        assert row["b"] == f"UI-TARS/action/L{last['UI-TARS']} + UI-TARS/reasoning/L{last['UI-TARS']}"
        assert f"InternVL3/reasoning/L{last['InternVL3']}" in row["a"]
        assert row["ci_low"] <= row["mean_diff"] <= row["ci_high"]
        page = (folder / "report.html").read_text()
        assert 'alt="Equivalence tests (TOST)"' in page and 'id="equivalence"' in page
    # the subject's side a is the mean of its spaces over its held-out runs
    runs = pd.read_parquet(gameplay_out / "sub-01" / "run_scores.parquet")
    eq = pd.read_csv(gameplay_out / "sub-01" / "equivalence.csv")
    a = [s.strip() for s in eq["a"].iloc[0].split("+")]
    assert len(a) == 4
    assert eq["mean_a"].iloc[0] == pytest.approx(runs[runs.space.isin(a)].groupby("run")["mean_r"].mean().mean())


def test_group_and_subject_reports_read_at_a_glance_in_chromium(gameplay_out):
    """The gameplay reports in a real browser (screenshots in test-artefacts/screenshots/gameplay-*.png): rows 1-5
    each have their section (prompt gain, partitions per ROI, hierarchy, RL baselines, VLM-LAM equivalence), tables
    are excerpts, the headline names a fitted space."""
    from chromium import open_report

    rows = ["Prompt-driven gain", "Variance partitioning", "Prompt-driven gain along the hierarchy",
            "Equivalence tests (TOST)"]
    group = open_report(gameplay_out / "report.html", screenshot="gameplay-group")
    group.assert_reads_at_a_glance([*rows, "Models against the RL baselines"])
    subject = open_report(gameplay_out / "sub-01" / "report.html", screenshot="gameplay-sub-01")
    subject.assert_reads_at_a_glance([*rows, "Maps"])
