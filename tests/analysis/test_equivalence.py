"""Equivalence tests (TOST): parity with statsmodels, the interval rule, and a planted equivalence recovered
through the pipeline's cross-validation, paired over subjects (methods.md §10 row 5)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.weightstats import ttost_paired

from brainalign import pipeline
from brainalign.analysis.equivalence import equivalence_table, tost_paired
from brainalign.brain.recording import Recording
from brainalign.config import EquivalenceSpec, load_config
from brainalign.pipeline.group import subject_scores

from test_config import DEMO


@pytest.mark.parametrize("seed, shift, margin", [(0, 0.0, 0.5), (1, 0.3, 0.5), (2, -0.45, 0.5), (3, 0.1, 0.05),
                                                 (4, 1.0, 0.2)])
def test_tost_matches_statsmodels(seed, shift, margin):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal(12)
    a = b + shift + 0.4 * rng.standard_normal(12)
    p, (t1, p1, _), (t2, p2, _) = ttost_paired(a, b, -margin, margin)
    got = tost_paired(a, b, margin)
    assert got["p_tost"] == pytest.approx(p, rel=1e-10)
    assert (got["t_lower"], got["p_lower"]) == pytest.approx((t1, p1), rel=1e-10)
    assert (got["t_upper"], got["p_upper"]) == pytest.approx((t2, p2), rel=1e-10)
    assert got["mean_diff"] == pytest.approx(np.mean(a - b))


def test_equivalence_is_the_interval_inside_the_margin():
    """p_TOST < α exactly when the 1 − 2α interval lies inside (−δ, δ); both one-sided tests must pass."""
    rng = np.random.default_rng(5)
    verdicts = []
    for _ in range(200):
        d = rng.normal(rng.uniform(-0.3, 0.3), 0.2, size=8)
        res = tost_paired(d, np.zeros(8), margin=0.2, alpha=0.05)
        inside = -0.2 < res["ci_low"] and res["ci_high"] < 0.2
        assert res["equivalent"] == inside
        verdicts.append(inside)
    assert 0 < sum(verdicts) < 200  # both outcomes occur


def test_tost_rejects_bad_input_and_drops_nan_pairs():
    with pytest.raises(ValueError, match="margin must be a positive"):
        tost_paired([1.0, 2.0], [1.0, 2.0], margin=0)
    with pytest.raises(ValueError, match="alpha must be in"):
        tost_paired([1.0, 2.0], [1.0, 2.0], margin=0.1, alpha=0.5)
    with pytest.raises(ValueError, match="equal length"):
        tost_paired([1.0, 2.0], [1.0], margin=0.1)
    res = tost_paired([0.1, 0.2, np.nan, 0.15], [0.1, 0.21, 0.3, 0.16], margin=0.05)
    assert res["n"] == 3
    assert not tost_paired([0.1], [0.1], margin=0.05)["equivalent"]  # one pair proves nothing


def test_spec_rejects_a_space_on_both_sides():
    with pytest.raises(ValueError, match="on both sides"):
        EquivalenceSpec(name="x", a=["A/p/L1", "B/p/L1"], b=["B/p/L1"], margin=0.01)


def _subject(seed: int, n_runs: int = 4, per_run: int = 60, n_vox: int = 60):
    """Y driven by latent X; 'A' and 'B' carry X equally well (rotated, independent noise), 'weak' carries it
    through much more noise."""
    rng = np.random.default_rng(seed)
    n, k = n_runs * per_run, 6
    X = rng.standard_normal((n, k))
    Y = X @ rng.standard_normal((k, n_vox)) * 0.6 + rng.standard_normal((n, n_vox))
    q1, _ = np.linalg.qr(rng.standard_normal((k, k)))
    q2, _ = np.linalg.qr(rng.standard_normal((k, k)))
    spaces = {"A": X @ q1 + 0.3 * rng.standard_normal((n, k)), "B": X @ q2 + 0.3 * rng.standard_normal((n, k)),
              "weak": X + 2.0 * rng.standard_normal((n, k))}
    runs = np.repeat(np.arange(n_runs), per_run)
    mask = nib.Nifti1Image(np.ones((n_vox, 1, 1), dtype=np.uint8), np.eye(4))
    data = pipeline.StudyData(recording=Recording(data=Y.astype(np.float32), runs=runs, tr=2.0, mask_img=mask),
                              events=None, stimuli=[], design=np.zeros((n, 0)))
    return data, [pipeline.FeatureSpace(name, X_.astype(np.float32), "model") for name, X_ in spaces.items()]


def test_planted_equivalence_is_recovered_over_subjects():
    """Two spaces that carry the same signal are shown equivalent over 8 subjects; a space with the signal
    drowned in noise is not (and differs significantly). Catches a TOST that takes the smaller one-sided p, a
    flipped one-sided alternative, or sides averaged over the wrong spaces."""
    exp = load_config(DEMO)
    exp.analysis.reference = "A"
    exp.analysis.responsive_fraction = 1.0
    exp.timing.delays = [0]
    exp.encoding.alphas = [0.1, 1.0, 10.0, 100.0]
    runs = []
    for s in range(8):
        data, spaces = _subject(s)
        rs, preds, _ = pipeline.cross_validate(exp, data, spaces)
        preds.close()
        runs.append(rs.assign(subject=f"{s:02d}"))
    scores = subject_scores(pd.concat(runs, ignore_index=True))
    specs = [EquivalenceSpec(name="same", a=["A"], b=["B"], margin=0.02, metric="mean_r"),
             EquivalenceSpec(name="weaker", a=["A"], b=["weak"], margin=0.02, metric="mean_r")]
    table = equivalence_table(scores, specs, "mean_r", unit="subject").set_index("name")
    assert (table["n"] == 8).all() and (table["unit"] == "subject").all()
    assert table.loc["same", "equivalent"] and table.loc["same", "p_tost"] < 0.01
    assert not table.loc["weaker", "equivalent"]
    assert table.loc["weaker", "mean_diff"] > 0.05 and table.loc["weaker", "p_difference"] < 0.001
    with pytest.raises(ValueError, match="were not fitted"):
        equivalence_table(scores, [EquivalenceSpec(name="x", a=["A"], b=["C"], margin=0.01)], "mean_r")
