"""Run-aware FIR delays and within-run z-scoring."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding.delays import make_delayed, run_boundaries, zscore_with_train, zscore_within_runs


def _tutorial_delayer(X, delays):
    """voxelwise_tutorials' ``Delayer`` on one run: shift down by d, zeros at the start."""
    blocks = []
    for d in delays:
        Xd = np.zeros_like(X)
        if d > 0:
            Xd[d:] = X[:-d]
        elif d < 0:
            Xd[:d] = X[-d:]
        else:
            Xd = X.copy()
        blocks.append(Xd)
    return np.hstack(blocks)


def test_one_run_equals_tutorial_delayer_delay_major():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((25, 3)).astype(np.float32)
    delays = [0, 1, 2, 4, -1]
    out = make_delayed(X, delays)
    np.testing.assert_array_equal(out, _tutorial_delayer(X, delays))
    # delay-major: block k holds X(t - d_k) for all features
    np.testing.assert_array_equal(out[4:, 3 * 3 : 4 * 3], X[:-4])
    assert out.dtype == X.dtype


def test_no_sample_crosses_a_run_boundary():
    runs = np.repeat([0, 1, 2], [7, 5, 9])
    X = (np.arange(runs.size, dtype=np.float64) + 1)[:, None]  # value = source index + 1
    delays = [1, 2, 3]
    out = make_delayed(X, delays, runs)
    for t in range(runs.size):
        for k, d in enumerate(delays):
            v = out[t, k]
            if v == 0:
                # zero only where the source would fall before the run start
                assert t - d < np.flatnonzero(runs == runs[t])[0]
            else:
                src = int(v) - 1
                assert src == t - d and runs[src] == runs[t]


@pytest.mark.parametrize("labels", [[2, 0, 1], [5, 3, 9]])
def test_unsorted_run_labels_and_unequal_lengths(labels):
    rng = np.random.default_rng(1)
    lengths = [6, 2, 11]  # second run shorter than the largest delay
    runs = np.repeat(labels, lengths)
    X = rng.standard_normal((runs.size, 2))
    delays = [1, 3]
    out = make_delayed(X, delays, runs)
    expected = np.vstack([_tutorial_delayer(X[runs == r], delays) for r in labels])
    np.testing.assert_array_equal(out, expected)
    short = runs == labels[1]
    assert np.all(out[short][:, 2:] == 0)  # delay 3 > run length 2


def test_delays_reject_non_contiguous_runs_and_bad_shapes():
    X = np.ones((6, 2))
    with pytest.raises(ValueError, match="contiguous"):
        make_delayed(X, [1], np.array([0, 0, 1, 1, 0, 0]))
    with pytest.raises(ValueError, match="one run label per sample"):
        make_delayed(X, [1], np.zeros(5))
    with pytest.raises(ValueError, match="X must be 2-D"):
        make_delayed(np.ones(6), [1])
    with pytest.raises(ValueError, match="delays is empty"):
        make_delayed(X, [])


def test_run_boundaries_in_order_of_appearance():
    b = run_boundaries(np.array([3, 3, 1, 2, 2, 2]))
    assert [x.tolist() for x in b] == [[0, 1], [2], [3, 4, 5]]


def test_zscore_within_runs_uses_each_runs_statistics():
    rng = np.random.default_rng(2)
    runs = np.repeat([1, 0], [30, 20])
    Y = rng.standard_normal((50, 3)) * 5 + 10
    Y[runs == 0] += 100  # a run offset that a global z-score would keep
    Y[:, 2] = 4.0
    Z = zscore_within_runs(Y, runs)
    for r in (0, 1):
        np.testing.assert_allclose(Z[runs == r, :2].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(Z[runs == r, :2].std(0), 1, atol=1e-5)
    assert np.all(Z[:, 2] == 0) and Z.dtype == np.float32


def test_zscore_with_train_ignores_held_out_rows():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 4)) * 3 + 1
    X[:, 3] = 2.0
    train = np.arange(30)
    Z = zscore_with_train(X, train)
    ref = StandardScaler().fit(X[train, :3]).transform(X[:, :3])
    np.testing.assert_allclose(Z[:, :3], ref, atol=1e-5)
    assert np.all(Z[:, 3] == 0)
    X2 = X.copy()
    X2[30:] += 1000.0  # changing held-out rows changes nothing on the training rows
    np.testing.assert_array_equal(zscore_with_train(X2, train)[train], Z[train])
    mask = np.zeros(40, bool)
    mask[train] = True
    np.testing.assert_array_equal(zscore_with_train(X, mask), Z)
    with pytest.raises(ValueError, match="at least 2"):
        zscore_with_train(X, [0])
