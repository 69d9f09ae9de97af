"""The best instruction per ROI (methods.md §10 row 15: IC best in EBA/FFA/PPA, image understanding best in early
visual), recovered from planted ROI scores."""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainalign.analysis.roi_scores import roi_prompt_table
from brainalign.report.figures import roi_prompt_heatmap

PROMPTS = ("IC", "IU1", "VQA")
SPACES = pd.DataFrame(
    [dict(space=f"M/{p}/L{layer}", kind="model", model="M", prompt=p, layer=layer) for p in PROMPTS
     for layer in (1, 2)]
    + [dict(space="ViT/none/L3", kind="model", model="ViT", prompt="none", layer=3)])


def _scores(seed=0, n_runs=5):
    """IC best in the higher visual ROIs, IU1 best in early visual, VQA second everywhere; run noise 0.005."""
    rng = np.random.default_rng(seed)
    planted = {"early_visual": dict(IC=0.20, IU1=0.26, VQA=0.23), "EBA": dict(IC=0.30, IU1=0.22, VQA=0.26),
               "FFA": dict(IC=0.28, IU1=0.20, VQA=0.25), "PPA": dict(IC=0.31, IU1=0.25, VQA=0.28)}
    rows = []
    for roi, by_prompt in planted.items():
        for run in range(n_runs):
            rows.append(dict(space="ViT/none/L3", roi=roi, run=run, value=0.2 + rng.normal(0, 0.005)))
            for p, v in by_prompt.items():
                for layer in (1, 2):
                    rows.append(dict(space=f"M/{p}/L{layer}", roi=roi, run=run,
                                     value=v - 0.05 * (layer == 1) + rng.normal(0, 0.005)))
    return pd.DataFrame(rows), planted


def test_best_prompt_per_roi_is_the_planted_one():
    scores, planted = _scores()
    t = roi_prompt_table(scores, SPACES)
    assert set(t["model"]) == {"M"}  # a model without prompts has nothing to rank
    best = t[t.is_best & (t.layer == 2)].set_index("roi")
    assert best["prompt"].to_dict() == {"early_visual": "IU1", "EBA": "IC", "FFA": "IC", "PPA": "IC"}
    assert (t.groupby(["layer", "roi"])["rank"].apply(sorted) == pd.Series([[1, 2, 3]] * 8).values).all()
    for roi, by_prompt in planted.items():
        want = sorted(by_prompt.values())[-1] - sorted(by_prompt.values())[-2]
        assert abs(best.loc[roi, "margin"] - want) < 0.01
        assert best.loc[roi, "n"] == 5
    png = roi_prompt_heatmap(t, ["early_visual", "EBA", "FFA", "PPA"])
    assert png[:4] == b"\x89PNG"


def test_swapped_prompt_labels_change_the_answer():
    """A wiring bug that swaps two prompts' spaces must show up in the table (the control for the test above)."""
    scores, _ = _scores()
    swapped = SPACES.replace({"prompt": {"IC": "IU1", "IU1": "IC"}})
    best = roi_prompt_table(scores, swapped).query("is_best and layer == 2").set_index("roi")["prompt"]
    assert best["EBA"] == "IU1" and best["early_visual"] == "IC"
