"""The report of a study whose reference is a frame baseline (the gameplay config: ``Pixels/none/L0``, a
``kind: baseline`` model, written as kind ``model`` in the spaces table) and whose reference prompt is ``neutral``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainalign.config import load_config
from brainalign.report import figures, html
from brainalign.report.results import Results

from test_study_gameplay import CONFIG, mini_overrides

MODELS = ("Qwen2.5-VL", "InternVL3", "UI-TARS")
PROMPTS = ("action", "reasoning", "neutral")
BASELINES = ("Pixels", "MotionEnergy", "Random")


def _results(unit: str | None = None) -> Results:
    exp = load_config(CONFIG, mini_overrides()[1::2])
    rows, score = [], {}
    for k, m in enumerate(MODELS):
        for j, p in enumerate(PROMPTS):
            for layer in (1, 2):
                name = f"{m}/{p}/L{layer}"
                rows.append(dict(space=name, kind="model", model=m, prompt=p, layer=layer, depth=layer / 2, dim=64))
                score[name] = 0.5 + 0.05 * k + 0.01 * j + 0.005 * layer
    for b, s in zip(BASELINES, (0.9, 0.4, 0.0)):  # the pipeline writes kind: baseline models as kind "model"
        rows.append(dict(space=f"{b}/none/L0", kind="model", model=b, prompt="none", layer=0, depth=0.0, dim=64))
        score[f"{b}/none/L0"] = s
    spaces = pd.DataFrame(rows)
    run_scores = pd.DataFrame([dict(space=s, run=r, mean_r_responsive=v + 0.01 * r, mean_r=v, median_r=v, n_voxels=9)
                               for s, v in score.items() for r in (1, 2, 3)])
    ref = exp.analysis.reference
    comp = pd.DataFrame([dict(space=s, reference=ref, mean=v, n=3, mean_diff=v - score[ref], sem_diff=0.01,
                              n_better=int(v > score[ref]) * 3, cohen_dz=-2.0, p_wilcoxon=0.25, p_t=0.05)
                         for s, v in score.items() if s != ref])
    vox = pd.DataFrame(dict(space=np.repeat(list(score), 2), voxel=np.tile([0, 1], len(score)), r=0.5, p=np.nan,
                            q=np.nan, significant=False))
    manifest = dict(models={}, data=dict(unit=unit, subjects=["01", "02"]) if unit else {})
    return Results(exp, dict(spaces=spaces, run_scores=run_scores, comparisons=comp, voxel_scores=vox),
                   manifest=manifest)


def test_headline_names_the_best_model_space_against_a_baseline_reference():
    res = _results()
    assert res.experiment.analysis.reference == "Pixels/none/L0"
    text = html._headline(res, "mean_r_responsive")
    assert "No model feature space was fitted" not in text
    assert text.startswith("The best model feature space, UI-TARS/neutral/L2, scores 0.650")
    assert "does not beat Pixels/none/L0 (0.920): better in 0 of 3 held-out runs" in text
    group = html._headline(_results(unit="subject"), "mean_r_responsive")
    assert "better in 0 of 3 subjects" in group


def test_per_run_figure_shows_reference_baselines_and_the_best_model_spaces():
    names = html._paired_spaces(_results(), "mean_r_responsive")
    assert names[0] == "Pixels/none/L0" and len(names) == len(set(names))
    assert {"MotionEnergy/none/L0", "Random/none/L0"} <= set(names)
    models = [n for n in names if n.split("/")[0] in MODELS]
    assert models == ["UI-TARS/neutral/L2", "UI-TARS/reasoning/L2", "UI-TARS/action/L2"]


def _ylabel(monkeypatch, draw) -> str:
    seen = []
    monkeypatch.setattr(figures, "png_bytes", lambda fig: seen.append(fig.axes[0].get_ylabel()) or b"")
    draw()
    return seen[0]


def test_prompt_gain_axes_name_the_configured_reference_prompt(monkeypatch):
    gain = pd.DataFrame([dict(model="m", prompt="action", layer=1, depth=0.5, mean_diff=0.1, sem_diff=0.01)])
    assert _ylabel(monkeypatch, lambda: figures.prompt_gain(gain, "neutral")) == "gain over the 'neutral' prompt"
    roi_gain = pd.DataFrame([dict(model="m", prompt="action", layer=1, roi=r, run=1, gain=0.1) for r in "ab"])
    slopes = pd.DataFrame([dict(model="m", prompt="action", layer=1, slope=0.1, early_late_ratio=1.0)])
    label = _ylabel(monkeypatch, lambda: figures.hierarchy_gain(roi_gain, slopes, ["a", "b"], "neutral"))
    assert "neutral" in label and "unprompted" not in label


def test_roi_peaks_are_one_compact_grid():
    n_rois = 11
    peaks = pd.DataFrame([dict(model=m, prompt=p, roi=f"roi{i}", peak_layer=1 + (i % 2), peak_depth=(1 + i % 2) / 2,
                               peak_value=0.3) for m in MODELS for p in PROMPTS for i in range(n_rois)])
    png = figures.roi_peak_grid(peaks)
    assert png.startswith(b"\x89PNG")
