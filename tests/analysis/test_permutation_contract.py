"""permutation_test's documented rules that the planted-effect tests cannot see (written from the mutation run,
benchmarks/README.md): the float32 tie tolerance, the "auto" dispatch between the two null algorithms, the
family-wise null against a per-permutation loop, silence on constant voxels, 1-D inputs and the exact messages."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from brainalign.analysis import metrics
from brainalign.analysis import stats
from brainalign.analysis.stats import block_permutations, has_exchangeable_blocks, permutation_test

METRICS = {"r": metrics.pearson_r, "r2": metrics.r2_score, "cosine": metrics.cosine_similarity}
L = 6  # two blocks of L samples: the only permutations are the identity and the swap


def _near_tie(metric: str, deltas, shift: float = 0.0, seed: int = 0):
    """Columns of two blocks each, built so that swapping the blocks of y_true scores exactly ``delta`` below the
    observed score (float64, to ~1e-15)."""
    rng = np.random.default_rng(seed)
    f = METRICS[metric]
    yt = np.empty((2 * L, len(deltas)))
    yp = np.empty_like(yt)
    for k, delta in enumerate(deltas):
        u, e, b = rng.standard_normal(L), rng.standard_normal(L), rng.standard_normal(2 * L) + shift

        def gap(eps):
            a = np.r_[u, u + eps * e]
            return f(a[:, None], b[:, None])[0] - f(np.r_[a[L:], a[:L]][:, None], b[:, None])[0]

        e0, e1 = 1e-3, 2e-3  # secant steps on the (smooth, nearly linear) gap
        for _ in range(30):
            g0, g1 = gap(e0) - delta, gap(e1) - delta
            if g1 == g0:
                break
            e0, e1 = e1, e1 - g1 * (e1 - e0) / (g1 - g0)
        yt[:, k], yp[:, k] = np.r_[u, u + e1 * e], b
    return yt, yp


def _swap_gap(metric, yt, yp):
    f = METRICS[metric]
    return f(yt, yp) - f(np.r_[yt[L:], yt[:L]], yp)


@pytest.mark.parametrize("metric,shift,deltas", [
    ("r", 0.0, [5e-6, 1.5e-5, 1e-9]),
    ("cosine", 0.0, [5e-6, 1.5e-5, 1e-9]),
    ("r2", 3.0, [5e-6, 1e-4, 2e-3, 1e-9]),  # r2 far below -1: the tolerance grows with |score|
])
def test_float32_counts_a_null_within_its_tolerance_and_float64_does_not(metric, shift, deltas):
    yt, yp = _near_tie(metric, deltas, shift)
    gap = _swap_gap(metric, yt, yp)
    np.testing.assert_allclose(gap, deltas, rtol=1e-4)
    n_perm = 50
    perms = block_permutations(np.zeros(2 * L), L, n_perm, seed=3)
    n_identity = int(np.all(perms == np.arange(2 * L), axis=1).sum())
    assert 0 < n_identity < n_perm
    obs = METRICS[metric](yt, yp)
    for dtype, rel in ((np.float32, 1e-5), (np.float64, 1e-12)):
        tol = rel * np.maximum(1.0, np.abs(obs))
        assert np.all((gap < 0.8 * tol) | (gap > 1.25 * tol)), "a column sits too close to the documented tolerance"
        counted = gap <= tol  # the documented rule: a null within tol of the observed score counts as >=
        expected = np.where(counted, 1.0, (1.0 + n_identity) / (1 + n_perm))
        _, p = permutation_test(yt, yp, None, L, n_perm, metric, seed=3, dtype=dtype)
        np.testing.assert_allclose(p, expected, rtol=1e-12, err_msg=f"{dtype.__name__}")
    # float32 is the default precision: the same p-values as asking for it
    np.testing.assert_array_equal(permutation_test(yt, yp, None, L, n_perm, metric, seed=3)[1],
                                  permutation_test(yt, yp, None, L, n_perm, metric, seed=3, dtype=np.float32)[1])
    assert (gap <= 1e-5 * np.maximum(1.0, np.abs(obs))).any() and (gap > 1e-12).all()  # the two dtypes differ here


@pytest.mark.parametrize("n,block_length,expected", [
    (4, 1, "matmul"),  # one group of 4 blocks: 16 block pairs = 4 x 4 samples, the boundary, still matmul
    (18, 2, "gather"),  # 9 blocks: 81 pairs > 4 x 18 = 72 (and <= 5 x 18)
    (5, 1, "gather"),  # 25 pairs > 20
    (40, 4, "matmul"),  # 10 blocks: 100 pairs <= 160
])
def test_auto_takes_matmul_unless_block_pairs_outnumber_four_times_the_samples(monkeypatch, n, block_length,
                                                                                expected):
    calls = []
    real = stats._expand
    monkeypatch.setattr(stats, "_expand", lambda blocks, row: calls.append(1) or real(blocks, row))
    rng = np.random.default_rng(0)
    yt, yp = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    auto = permutation_test(yt, yp, None, block_length, 20, seed=1, method="auto", dtype=np.float64)
    assert ("gather" if calls else "matmul") == expected
    calls.clear()
    ref = permutation_test(yt, yp, None, block_length, 20, seed=1, method=expected, dtype=np.float64)
    assert bool(calls) == (expected == "gather")
    for x, y in zip(auto, ref):
        np.testing.assert_array_equal(x, y)


def test_fwer_equals_the_max_over_voxels_of_a_per_permutation_loop():
    rng = np.random.default_rng(5)
    runs = np.repeat([0, 1], [30, 26])
    yt = rng.standard_normal((56, 7))
    yp = 0.3 * yt + rng.standard_normal((56, 7))
    yt[:, 3] = 1.5  # a constant voxel: NaN score, left out of the family
    perms = block_permutations(runs, 4, 60, seed=2)
    obs = metrics.pearson_r(yt, yp)
    with np.errstate(invalid="ignore", divide="ignore"):
        null_max = np.array([np.nanmax(metrics.pearson_r(yt[perm], yp)) for perm in perms])
    ref = np.array([(1 + np.sum(null_max >= s - 1e-12)) / 61 for s in obs])
    for method in ("matmul", "gather"):
        scores, p, p_fwer = permutation_test(yt, yp, runs, 4, 60, seed=2, return_fwer=True, method=method,
                                             dtype=np.float64, voxel_batch=2)
        np.testing.assert_allclose(p_fwer[np.isfinite(obs)], ref[np.isfinite(obs)], rtol=1e-12)
        assert np.isnan(p_fwer[3]) and np.isnan(p[3]) and np.isnan(scores[3])
    # the constant voxel changes nothing for the others
    keep = [0, 1, 2, 4, 5, 6]
    without = permutation_test(yt[:, keep], yp[:, keep], runs, 4, 60, seed=2, return_fwer=True, dtype=np.float64)
    np.testing.assert_array_equal(without[2], p_fwer[keep])


@pytest.mark.parametrize("metric", ["r", "r2", "cosine"])
@pytest.mark.parametrize("method", ["matmul", "gather"])
def test_constant_voxels_give_nan_silently(metric, method):
    rng = np.random.default_rng(1)
    yt, yp = rng.standard_normal((24, 4)), rng.standard_normal((24, 4))
    yt[:, 1] = yp[:, 1] = 0.0  # a constant voxel predicted by zeros: 0 / 0 in every metric's denominator
    yp[:, 2] = 0.0  # a zero prediction (r and cosine cannot score it, R² can)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores, p, p_fwer = permutation_test(yt, yp, None, 4, 30, metric, return_fwer=True, method=method)
    assert np.isnan(scores[1]) and np.isnan(p[1]) and np.isnan(p_fwer[1])
    assert np.isfinite(scores[[0, 3]]).all() and np.isfinite(p_fwer[[0, 3]]).all()


def test_one_dimensional_inputs_are_one_voxel():
    rng = np.random.default_rng(2)
    yt, yp = rng.standard_normal(40), rng.standard_normal(40)
    one = permutation_test(yt, yp, None, 5, 40, seed=4)
    two = permutation_test(yt[:, None], yp[:, None], None, 5, 40, seed=4)
    assert one[0].shape == (1,)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)


def test_default_seed_of_block_permutations_is_zero():
    runs = np.repeat([0, 1], 20)
    np.testing.assert_array_equal(block_permutations(runs, 4, 10), block_permutations(runs, 4, 10, seed=0))
    assert not np.array_equal(block_permutations(runs, 4, 10), block_permutations(runs, 4, 10, seed=1))


def test_exchangeable_blocks_need_two_of_equal_length_in_one_run():
    assert has_exchangeable_blocks(np.zeros(10), 5)  # exactly two blocks, one group of two
    assert not has_exchangeable_blocks(np.zeros(10), 6)  # 6 + 4: two blocks, unequal lengths
    assert not has_exchangeable_blocks(np.repeat([0, 1], 5), 5)  # two blocks, but in different runs
    assert not has_exchangeable_blocks(np.zeros(5), 5)  # one block


def test_messages_are_complete():
    y = np.zeros((20, 3))
    with pytest.raises(ValueError, match=r"^y_true has shape \(20, 3\) and y_pred has shape \(20, 4\); pass two "
                                         r"arrays of the same shape \(n_samples, n_voxels\)\.$"):
        permutation_test(y, np.zeros((20, 4)), None, 5, 10)
    with pytest.raises(ValueError, match=r"^runs has shape \(19,\) but the data have 20 samples; give one run label "
                                         r"per test sample \(or runs=None for a single run\)\.$"):
        permutation_test(y, y, np.zeros(19), 5, 10)
    with pytest.raises(ValueError, match=r"^block_length=20 leaves no two exchangeable blocks in any run; use a "
                                         r"shorter block_length or more test samples\.$"):
        permutation_test(y, y, None, 20, 10)
