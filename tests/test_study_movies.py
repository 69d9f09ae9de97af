"""configs/movies_instruction_tuned_video_audio.yaml end to end: miniature Movie10 (real .mkv clips with sound) × tiny stand-ins.

The miniature's clips change brightness and loudness every TR; left-hemisphere vertices follow brightness and
right-hemisphere vertices follow loudness two TRs later. Through per-TR clips decoded from the files, tiny video
and audio models, FIR delays, ridge trained on Bourne + Wolf and tested on Life, the tuned vertices must be the
well-predicted ones — by video models on the left and by audio models on the right.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

pytest.importorskip("av")
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "movies_instruction_tuned_video_audio.yaml"
MINI = ["--set", "brain.subjects=['01','02']", "--set", "brain.options.truncate=null",
        "--set", "brain.options.n_vertices=[42,42]", "--set", "analysis.n_permutations=100",
        "--set", "stimuli.size=56", "--set", "stimuli.n_frames=4",
        # fewer instructions for the video LLMs other than Qwen2.5-VL (fits and forward passes: the suite's budget);
        # Qwen2-VL's four carry the in-context controls (row 6's in-context arm) and the coupling (row 7)
        "--set", "models.1.prompts=[v01,v02,v03,v04]", "--set", "models.2.prompts=[v01,v02]",
        "--set", "models.3.prompts=[v01,v02]", "--set", "analysis.controls.models=[Qwen2-VL]",
        "--set", "analysis.arms.1.models=[Qwen2-VL]", "--set", "analysis.coupling.model=Qwen2-VL",
        "--set", "analysis.coupling.n_permutations=200"]


@pytest.fixture(scope="module")
def movie10(tmp_path_factory):
    from brainalign.testing.fixtures import write_movie10

    return write_movie10(tmp_path_factory.mktemp("cneuromod"), subjects=("01", "02"), trs_per_segment=16,
                         videos=True)


@pytest.fixture(scope="module")
def movies_out(movie10, tmp_path_factory, feature_cache):
    out = tmp_path_factory.mktemp("movies_out") / "results"
    root = Path(movie10["raw"]).parent
    proc = run_cli("run", str(CONFIG), "--data-root", str(root), "--models", "tiny", "--cache", str(feature_cache),
                   "--out", str(out), *MINI)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _vertex_r(out: Path, subject: str, model: str) -> np.ndarray:
    vox = pd.read_parquet(out / f"sub-{subject}" / "voxel_scores.parquet")
    spaces = pd.read_csv(out / f"sub-{subject}" / "spaces.csv")
    names = spaces.loc[spaces.model == model, "space"]
    return np.stack([vox.loc[vox.space == n, "r"].to_numpy() for n in names]).max(0)  # best layer / prompt


def test_video_models_find_brightness_tuning_and_audio_models_find_loudness_tuning(movies_out, movie10):
    nv = movie10["n_vertices"]
    for sub in ("01", "02"):
        video = _vertex_r(movies_out, sub, "Qwen2.5-VL")
        audio = _vertex_r(movies_out, sub, "Qwen2-Audio")
        assert video.size == audio.size == 2 * nv
        assert np.corrcoef(video[:nv], movie10["w_video"])[0, 1] > 0.5
        assert np.corrcoef(audio[nv:], movie10["w_audio"])[0, 1] > 0.5
        # each modality explains its own hemisphere better than the other modality does
        assert video[:nv].mean() > audio[:nv].mean() and audio[nv:].mean() > video[nv:].mean()


def test_every_model_reads_its_own_prompts_and_the_test_movie_is_life(movies_out):
    spaces = pd.read_csv(movies_out / "sub-01" / "spaces.csv")
    prompts = spaces.groupby("model")["prompt"].agg(lambda p: sorted(set(p)))
    assert prompts["Qwen2.5-VL"] == [f"v{i:02d}" for i in range(1, 14)]
    assert prompts["Qwen2-Audio"] == ["a01", "a02", "a03"]
    assert prompts["VideoMAE"] == prompts["Wav2Vec2"] == ["none"]
    runs = pd.read_parquet(movies_out / "sub-01" / "run_scores.parquet")
    assert set(runs["run"]) == {3}  # Life only
    man = json.loads((movies_out / "sub-01" / "manifest.json").read_text())
    assert any(k.startswith("clip:life01") for k in man["inputs"])  # movie files are hashed into the manifest
    group = pd.read_csv(movies_out / "comparisons.csv")
    assert (group["n"] == 2).all() and group["reference"].iloc[0].startswith("VideoMAE/none/L")


def test_validate_names_a_missing_clip(movie10, tmp_path):
    import shutil

    root = tmp_path / "cneuromod"
    shutil.copytree(Path(movie10["raw"]).parent, root)
    (root / "movie10" / "stimuli" / "life" / "life02.mkv").unlink()
    proc = run_cli("validate", str(CONFIG), "--data-root", str(root), *MINI)
    assert proc.returncode == 2
    assert "life02.mkv" in " ".join(proc.stderr.split())


def test_surface_rois_from_the_glasser_label_files_give_layer_peaks_per_roi(movies_out, movie10):
    """Row 8 needs ROIs on the surface: brain.rois.surface_labels (left, right GIFTI label files) select the
    vertices of each Glasser group; each ROI's size is the fixture's count (left hemisphere first), and every
    model × prompt gets a peak layer per ROI."""
    import yaml

    groups = yaml.safe_load(CONFIG.read_text())["brain"]["rois"]["groups"]
    labels = np.concatenate([movie10["surface_labels"]["L"], movie10["surface_labels"]["R"]])
    rois = pd.read_csv(movies_out / "sub-01" / "roi_scores.csv")
    assert set(rois["roi"]) == set(groups)
    sizes = rois.groupby("roi")["n_voxels"].max()
    for roi, members in groups.items():
        assert sizes[roi] == np.isin(labels, members).sum(), roi
    peaks = pd.read_csv(movies_out / "sub-01" / "roi_peaks.csv")
    assert set(peaks["roi"]) == set(groups) and {"Qwen2.5-VL", "Qwen2-Audio"} <= set(peaks["model"])
    assert 'alt="peak layer per ROI and model"' in (movies_out / "sub-01" / "report.html").read_text()


def test_rows_6_and_7_reach_the_reports(movies_out):
    """Row 6's arms (instruction-tuned against in-context, non-instruction-tuned and unimodal arms, paired over the
    2 subjects) and row 7's coupling (MiniLM on the instruction texts; instructed and in-context maps) are tables and
    figures of the reports. Their planted recovery is in test_study_movies_rows.py."""
    spaces = pd.read_csv(movies_out / "sub-01" / "spaces.csv")
    assert {"ViT-H", "Qwen2-VL-base", "Qwen2-Audio-base"} <= set(spaces.model)
    icl = spaces[(spaces.kind == "control") & spaces.prompt.str.endswith("~icl2")]
    assert sorted(icl.prompt) == [f"v0{i}~icl2" for i in range(1, 5)] and set(icl.model) == {"Qwen2-VL"}
    cmp = pd.read_csv(movies_out / "arm_comparisons.csv")
    assert (cmp["a"] == "instruction-tuned").all() and list(cmp["b"]) == ["in-context", "non-instruction-tuned", "unimodal"]
    assert (cmp["n"] == 2).all() and (cmp["unit"] == "subject").all() and np.isfinite(cmp["percent_gain"]).all()
    cpl = pd.read_csv(movies_out / "sub-01" / "coupling.csv")
    assert list(cpl["maps"]) == ["instructed", "in_context_k2"] and (cpl["n_instructions"] == 4).all()
    assert (cpl["text_model"] == "coupling-text").all()
    group = pd.read_csv(movies_out / "coupling.csv")
    assert (group["n_subjects"] == 2).all() and set(group["maps"]) == {"instructed", "in_context_k2"}
    html = (movies_out / "report.html").read_text()
    assert 'alt="Model arms: instruction-tuned against each arm"' in html
    assert 'alt="Instruction-semantics coupling"' in (movies_out / "sub-01" / "report.html").read_text()


def test_group_and_subject_reports_read_at_a_glance_in_chromium(movies_out, tmp_path):
    """The Movie10 reports in a real browser (screenshots in test-artefacts/screenshots/movies-*.png): rows 6-8 each
    have their section, tables are excerpts, the headline names a fitted space."""
    from chromium import open_report

    group = ["ROI scores", "Model arms: instruction-tuned against each arm",
             "Instruction-semantics coupling over subjects"]
    open_report(movies_out / "report.html", screenshot="movies-group").assert_reads_at_a_glance(group)
    # `brainalign report` redraws a group folder on the surface (it has vertices.npy but no voxel table)
    copy = tmp_path / "group"
    shutil.copytree(movies_out, copy, ignore=shutil.ignore_patterns("sub-*"))
    (copy / "report.html").unlink()
    proc = run_cli("report", str(copy))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    open_report(copy / "report.html").assert_reads_at_a_glance(group)
    subject = ["ROI scores", "Layer curves per ROI", "Instruction-semantics coupling", "Maps"]
    open_report(movies_out / "sub-01" / "report.html", screenshot="movies-sub-01").assert_reads_at_a_glance(subject)
