"""Events → TR grid: block overlap design and Lanczos resampling."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.timing import lanczos_resample, stimulus_design


def _reference_lanczos(data, oldtime, newtime, window=3, cutoff_mult=1.0):
    """Straight loop over new times, written from the Huth-lab formula (the reference)."""
    cutoff = 1 / np.mean(np.diff(newtime)) * cutoff_mult
    out = np.zeros((len(newtime), data.shape[1]))
    for i, nt in enumerate(newtime):
        t = (nt - oldtime) * cutoff
        w = np.zeros_like(t)
        for j, tj in enumerate(t):
            if tj == 0:
                w[j] = 1.0
            elif abs(tj) <= window:
                w[j] = window * np.sin(np.pi * tj) * np.sin(np.pi * tj / window) / (np.pi**2 * tj**2)
        out[i] = w @ data
    return out


def test_lanczos_matches_loop_reference():
    rng = np.random.default_rng(0)
    old = np.sort(rng.uniform(0, 60, 300))
    data = rng.standard_normal((300, 5))
    new = np.arange(0, 60, 2.0) + 1.0
    got = lanczos_resample(data, old, new, chunk=7)
    np.testing.assert_allclose(got, _reference_lanczos(data, old, new), rtol=1e-5, atol=1e-5)


def test_lanczos_recovers_a_slow_signal():
    old = np.arange(0, 200, 0.1)
    slow = np.sin(2 * np.pi * old / 60.0)[:, None]  # far below the 0.25 Hz Nyquist of TR 2 s
    new = np.arange(10, 190, 2.0)
    got = lanczos_resample(slow, old, new)[:, 0]
    scale = np.linalg.lstsq(np.sin(2 * np.pi * new / 60.0)[:, None], got, rcond=None)[0][0]
    assert np.corrcoef(got, np.sin(2 * np.pi * new / 60.0))[0, 1] > 0.999 and scale > 0


def test_lanczos_rejects_bad_input():
    with pytest.raises(ValueError, match="one row per old time"):
        lanczos_resample(np.zeros((5, 2)), np.arange(4), np.arange(3.0))
    with pytest.raises(ValueError, match="increasing"):
        lanczos_resample(np.zeros((4, 2)), np.arange(4), np.array([2.0, 1.0]))


def test_stimulus_design_overlap_fractions_and_errors():
    runs = np.repeat([0, 1], 4)
    ev = pd.DataFrame(dict(run=[0, 1], onset=[1.0, 0.0], duration=[3.0, 2.0], stimulus=["a", "b"]))
    D = stimulus_design(ev, runs, tr=2.0, stimuli=["a", "b"])
    np.testing.assert_allclose(D[:4, 0], [0.5, 1.0, 0, 0])
    np.testing.assert_allclose(D[4:, 1], [1.0, 0, 0, 0])
    late = ev.assign(onset=[7.0, 0.0])
    with pytest.raises(ValueError, match="after the run's last TR"):
        stimulus_design(late, runs, tr=2.0, stimuli=["a", "b"])
    with pytest.raises(ValueError, match="no features"):
        stimulus_design(ev, runs, tr=2.0, stimuli=["a"])
