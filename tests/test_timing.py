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


def test_lanczos_kernel_values_and_default_window():
    from brainalign.timing.grid import lanczos_kernel

    t = np.array([0.0, 0.5, 1.0, 2.5, 3.5, -3.5, 4.5])
    k3 = lanczos_kernel(t)
    assert k3[0] == 1.0 and np.all(k3[4:] == 0.0)  # 1 at 0, nothing beyond the default window of 3
    np.testing.assert_allclose(k3[1], 3 * np.sin(np.pi / 2) * np.sin(np.pi / 6) / (np.pi**2 / 4))
    assert abs(k3[2]) < 1e-15 and k3[3] != 0.0
    assert lanczos_kernel(t, window=4)[4] != 0.0
    # computed in float64 whatever the input dtype, and without 0/0 warnings at t = 0
    t32 = (t + 0.1).astype(np.float32)
    np.testing.assert_array_equal(lanczos_kernel(t32), lanczos_kernel(t32.astype(np.float64)))
    import warnings

    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        lanczos_kernel(np.array([0.0, 1.0]))


def test_lanczos_resample_window_dtype_and_input_precision():
    rng = np.random.default_rng(4)
    old = np.sort(rng.uniform(0, 40, 120))
    data = rng.standard_normal((120, 2))
    new = np.arange(0, 40, 2.0) + 0.5
    got = lanczos_resample(data, old, new, window=2, cutoff_mult=0.5)
    assert got.dtype == np.float32 and got.shape == (20, 2)
    np.testing.assert_allclose(got, _reference_lanczos(data, old, new, window=2, cutoff_mult=0.5), rtol=1e-5, atol=1e-5)
    # float32/float16 inputs are computed in float64: the same numbers as the float64 inputs
    old16, new16, data16 = old.astype(np.float16), new.astype(np.float16), data.astype(np.float16)
    np.testing.assert_array_equal(
        lanczos_resample(data16, old16, new16),
        lanczos_resample(data16.astype(np.float64), old16.astype(np.float64), new16.astype(np.float64)))
    np.testing.assert_array_equal(lanczos_resample(data, old, new, chunk=3), lanczos_resample(data, old, new))
    # two new times closer than one second, and window 1, are accepted
    assert lanczos_resample(data, old, np.array([1.0, 1.5]), window=1).shape == (2, 2)


@pytest.mark.parametrize("new, kw", [(np.array([1.0]), {}), (np.array([1.0, 1.0, 2.0]), {}),
                                     (np.array([[1.0, 2.0], [3.0, 4.0]]), {})])
def test_lanczos_rejects_too_few_or_unordered_new_times(new, kw):
    with pytest.raises(ValueError, match=r"^new_times must be at least 2 increasing times \(seconds\)\.$"):
        lanczos_resample(np.zeros((4, 2)), np.arange(4.0), new, **kw)


@pytest.mark.parametrize("kw", [dict(window=0), dict(cutoff_mult=0.0), dict(window=0, cutoff_mult=1.0)])
def test_lanczos_rejects_bad_window_or_cutoff(kw):
    with pytest.raises(ValueError, match=r"^window must be >= 1 and cutoff_mult > 0, got \S+ and \S+\.$"):
        lanczos_resample(np.zeros((4, 2)), np.arange(4.0), np.arange(3.0), **kw)
    ok = dict(window=1, cutoff_mult=1e-3)
    assert lanczos_resample(np.ones((4, 2)), np.arange(4.0), np.arange(3.0), **ok).shape == (3, 2)


def test_lanczos_rejects_decreasing_unsigned_times():
    with pytest.raises(ValueError, match="increasing"):  # np.diff of uint8 [2, 1] wraps around to 255
        lanczos_resample(np.zeros((4, 2)), np.arange(4.0), np.array([2, 1], dtype=np.uint8))
