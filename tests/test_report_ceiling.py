"""ROI bars with a noise-ceiling band (``roi_ceilings`` table) and the report's CSV downloads."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
from PIL import Image

from brainalign.config import load_config
from brainalign.report import figures
from brainalign.report.html import render_report
from brainalign.report.results import Results

from test_config import DEMO

ROIS = ["V1", "MT", "PFC"]
CEIL = {"V1": 0.6, "MT": 0.4, "PFC": 0.2}


def _comparisons() -> pd.DataFrame:
    rows = []
    for roi in ROIS:
        rows.append(dict(space="m/action/L1", roi=roi, mean=0.1, sem=0.01, p_wilcoxon=0.01))
        rows.append(dict(space="baseline/noise", roi=roi, mean=0.0, sem=0.01, p_wilcoxon=np.nan))
    return pd.DataFrame(rows)


def _band_rows(png: bytes) -> np.ndarray:
    """Pixels per image row in the ceiling band's colour."""
    im = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    band = (np.abs(im - [230, 216, 184]) <= 3).all(-1)
    return band.sum(1)


def test_ceiling_band_is_drawn_at_each_rois_ceiling():
    plain = figures.roi_bars(_comparisons(), ["m/action/L1"], "baseline/noise", "mean r")
    ceil = pd.DataFrame(dict(roi=ROIS, ceiling=[CEIL[r] for r in ROIS],
                             ceiling_low=[CEIL[r] - 0.05 for r in ROIS], ceiling_high=[CEIL[r] + 0.05 for r in ROIS]))
    banded = figures.roi_bars(_comparisons(), ["m/action/L1"], "baseline/noise", "mean r", ceil)
    assert _band_rows(plain).sum() == 0
    rows = _band_rows(banded)
    assert rows.sum() > 500
    # three bands at three heights (ceilings 0.6, 0.4, 0.2 ± 0.05 do not overlap): three separate runs of rows
    on = np.flatnonzero(rows > 60)  # wider than the legend's patch
    halves = np.split(on, np.flatnonzero(np.diff(on) > 1) + 1)
    # each band is cut in two equal halves by the dashed line at the ceiling (the middle of low..high)
    assert len(halves) == 6, [(r[0], r[-1]) for r in halves]
    for upper, lower in zip(halves[::2], halves[1::2]):
        assert lower[0] - upper[-1] < 6 and abs(len(upper) - len(lower)) <= 2
    bands = [np.concatenate(h) for h in zip(halves[::2], halves[1::2])]
    # equal heights (0.1 each) and equal spacing (ceilings 0.2 apart): the y axis is linear in the ceilings
    heights = [b[-1] - b[0] for b in bands]
    gaps = np.diff([b.mean() for b in bands])
    assert max(heights) - min(heights) <= 2 and abs(gaps[0] - gaps[1]) <= 2 and gaps[0] > 1.5 * heights[0]


def _results(tables_extra: dict) -> Results:
    exp = load_config(DEMO)
    exp.analysis.reference = "baseline/noise"
    exp.analysis.metric = "mean_r"
    exp.analysis.n_permutations = 0
    spaces = pd.DataFrame([dict(space="m/action/L1", kind="model", model="m", prompt="action", layer=1, depth=1.0),
                           dict(space="baseline/noise", kind="baseline", model=None, prompt=None, layer=None,
                                depth=None)])
    run_scores = pd.DataFrame([dict(space=s, run=r, mean_r=m + 0.01 * r, median_r=m, n_voxels=10)
                               for s, m in (("m/action/L1", 0.2), ("baseline/noise", 0.0)) for r in range(1, 5)])
    vox = pd.DataFrame(dict(space=["m/action/L1"] * 3 + ["baseline/noise"] * 3, voxel=[0, 1, 2] * 2,
                            r=[0.2, 0.3, 0.1, 0.0, 0.01, -0.01], p=np.nan, q=np.nan, significant=False))
    comp = pd.DataFrame([dict(space="m/action/L1", mean=0.2, mean_diff=0.2, sem_diff=0.01, n_better=4, n=4,
                              cohen_dz=3.0, p_wilcoxon=0.06, p_t=0.01)])
    layers = pd.DataFrame([dict(model="m", prompt="action", layer=1, depth=1.0, mean=0.2, sem=0.01)])
    tables = dict(spaces=spaces, run_scores=run_scores, voxel_scores=vox, comparisons=comp, layers=layers,
                  **tables_extra)
    return Results(exp, tables, manifest=dict(models={}, data={}))


def test_ceilings_round_trip_and_every_summary_table_is_downloadable(tmp_path):
    ceil = pd.DataFrame(dict(roi=ROIS, ceiling=[CEIL[r] for r in ROIS]))
    res = _results(dict(roi_ceilings=ceil))
    back = Results.load(res.save(tmp_path))
    pd.testing.assert_frame_equal(back.tables["roi_ceilings"], ceil)
    html = render_report(back)
    links = dict(re.findall(r'download="([^"]+)" href="data:text/csv;base64,([^"]+)"', html))
    assert set(links) >= {"demo-haxby2001-minilm-scores.csv", "comparisons.csv", "layers.csv", "roi_ceilings.csv"}
    got = pd.read_csv(io.StringIO(base64.b64decode(links["roi_ceilings.csv"]).decode()))
    pd.testing.assert_frame_equal(got, ceil)
    scores = pd.read_csv(io.StringIO(base64.b64decode(links["demo-haxby2001-minilm-scores.csv"]).decode()))
    assert len(scores) == 2 * 4 * 2  # spaces × runs × metrics, tidy
