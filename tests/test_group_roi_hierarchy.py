"""Group ROI tables paired over subjects (methods.md §10 row 3: the prompt-driven gain in early visual cortex is
about half of that in frontal-parietal/motor cortex), on planted per-subject ROI scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainalign.config import load_config
from brainalign.pipeline.group import group_results
from brainalign.report.html import render_report
from brainalign.report.results import Results

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gameplay_action_vs_reasoning.yaml"
SPACES = pd.DataFrame(dict(space=["Pixels/none/L0", "M/neutral/L2", "M/action/L2"], kind=["model"] * 3,
                           model=["Pixels", "M", "M"], prompt=["none", "neutral", "action"], layer=[0, 2, 2],
                           depth=[0.0, 1.0, 1.0]))


def _subjects(n_subjects: int = 6, n_runs: int = 3, seed: int = 0):
    """Per-subject Results whose action-prompt gain over 'neutral' grows along the hierarchy: early visual gains
    half of what IFG + MFG + dmPFC gain (the config's early and late ends)."""
    exp = load_config(CONFIG)
    exp.analysis.equivalence, exp.analysis.partitions = [], []  # they name the study's models
    hierarchy = exp.brain.rois.hierarchy
    late = np.mean([hierarchy.index(r) for r in exp.brain.rois.late])
    planted = {roi: 0.01 * (1 + k / late) for k, roi in enumerate(hierarchy)}
    rng = np.random.default_rng(seed)
    out = {}
    for s in range(n_subjects):
        offset = rng.normal(0, 0.003)  # subjects differ; runs within a subject differ less
        roi_rows, run_rows = [], []
        for run in range(n_runs):
            for k, roi in enumerate(hierarchy):
                base = 0.1 + 0.01 * k + rng.normal(0, 0.01)
                for space, value in (("Pixels/none/L0", base - 0.02 + rng.normal(0, 0.01)), ("M/neutral/L2", base),
                                     ("M/action/L2", base + planted[roi] + offset + rng.normal(0, 0.002))):
                    roi_rows.append(dict(space=space, roi=roi, run=run, value=value, n_voxels=50 + k))
            for space, value in (("Pixels/none/L0", 0.08), ("M/neutral/L2", 0.1), ("M/action/L2", 0.12)):
                v = value + rng.normal(0, 0.005)
                run_rows.append(dict(space=space, run=run, mean_r=v, median_r=v, mean_r_responsive=v, n_voxels=900))
        tables = dict(spaces=SPACES, run_scores=pd.DataFrame(run_rows), roi_scores=pd.DataFrame(roi_rows))
        out[f"{s + 1:02d}"] = Results(exp, tables, manifest=dict(data=dict(subject=f"{s + 1:02d}"), inputs={}))
    return exp, out, planted


def test_group_gain_along_the_hierarchy_is_paired_over_subjects():
    exp, per_subject, planted = _subjects()
    res = group_results(exp, per_subject)
    gain, slope = res.tables["roi_gain"], res.tables["roi_hierarchy"]
    assert sorted(gain["run"].unique()) == list(range(6))  # the units are the 6 subjects, not their 3 runs
    by_roi = gain.groupby("roi")["gain"].mean()
    for roi, want in planted.items():
        assert by_roi[roi] == pytest.approx(want, abs=0.004), roi
    row = slope.set_index(["model", "prompt"]).loc[("M", "action")]
    assert row["early_late_ratio"] == pytest.approx(0.5, abs=0.08)
    assert row["slope"] > 0 and row["slope_p"] < 0.001
    comp = res.tables["roi_comparisons"]
    assert set(comp["roi"]) == set(exp.brain.rois.hierarchy) and (comp.loc[comp.space != "Pixels/none/L0", "n"] == 6).all()


def test_group_report_shows_the_roi_section_over_subjects():
    exp, per_subject, _ = _subjects(n_subjects=3)
    res = group_results(exp, per_subject)
    page = render_report(res)
    assert "Prompt-driven gain along the hierarchy" in page or 'alt="prompt-driven gain' in page.lower()
    assert "early_visual" in page and "IFG + MFG + dmPFC" in page
