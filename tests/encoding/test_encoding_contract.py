"""Contracts of the small encoding modules, written from mutmut survivors (benchmarks/README.md, "Mutation testing"):
boundaries, defaults, dtypes and the messages that name the bad argument, with numpy/scikit-learn references."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding._validation import check_alphas, check_runs, check_X
from brainalign.encoding.delays import make_delayed, run_boundaries, zscore_with_train, zscore_within_runs
from brainalign.encoding.design import design_delays, prepare_design
from brainalign.encoding.held_out import HeldOut
from brainalign.encoding.scoring import r2_score


# ----------------------------------------------------------------------------- delays.py
def test_run_boundaries_edge_cases_and_messages():
    assert run_boundaries(np.array([], dtype=int)) == []
    assert [b.tolist() for b in run_boundaries([7])] == [[0]]
    with pytest.raises(ValueError, match=r"^runs must be 1-D \(one label per sample\), got shape \(2, 2\)\.$"):
        run_boundaries(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"^runs: the samples of each run must be contiguous; run labels \[0\] "):
        run_boundaries([0, 1, 0])


def test_make_delayed_defaults_scalars_and_dtype():
    X = np.arange(12, dtype=np.float32).reshape(6, 2) + 1
    one_run = make_delayed(X, [0, 2])
    np.testing.assert_array_equal(one_run, make_delayed(X, [0, 2], np.full(6, 4)))
    np.testing.assert_array_equal(make_delayed(X, 2), make_delayed(X, [2]))
    np.testing.assert_array_equal(make_delayed(X, [2.0]), make_delayed(X, [2]))
    assert one_run.dtype == np.float32 and make_delayed(X.astype(int), [1]).dtype == int
    np.testing.assert_array_equal(one_run[:, :2], X)  # delay 0: the features themselves
    np.testing.assert_array_equal(one_run[:2, 2:], 0)
    np.testing.assert_array_equal(one_run[2:, 2:], X[:4])
    np.testing.assert_array_equal(make_delayed(X, [-2])[:4], X[2:])
    np.testing.assert_array_equal(make_delayed(X, [-2])[4:], 0)
    assert np.all(make_delayed(X, [6, -6, 7]) == 0)  # delays as long as the run leave nothing
    with pytest.raises(ValueError, match=r"^X must be 2-D \(n_samples, n_features\), got shape \(6,\)\.$"):
        make_delayed(np.ones(6), [1])
    with pytest.raises(ValueError, match=r"^delays is empty; give at least one delay"):
        make_delayed(X, [])
    with pytest.raises(ValueError, match=r"^runs has shape \(5,\) but X has 6 samples; give one run label"):
        make_delayed(X, [1], np.zeros(5))


def test_zscore_within_runs_eps_and_constant_runs():
    runs = np.repeat([0, 1], 4)
    Y = np.c_[np.r_[1.0, 2, 3, 4, 5, 5, 5, 5], np.r_[0, 1e-9, 0, 1e-9, 0, 0.5, 0, 0.5]]
    Z = zscore_within_runs(Y, runs)
    ref = (Y[:4, 0] - Y[:4, 0].mean()) / Y[:4, 0].std()
    np.testing.assert_allclose(Z[:4, 0], ref, rtol=1e-6)
    assert np.all(Z[4:, 0] == 0)  # constant within run 1
    assert np.all(Z[:4, 1] == 0)  # std 5e-10 <= eps = 1e-8: rounding noise, not signal
    np.testing.assert_allclose(Z[4:, 1], [-1, 1, -1, 1], rtol=1e-6)
    np.testing.assert_allclose(zscore_within_runs(Y, runs, eps=1e-12)[:4, 1], [-1, 1, -1, 1], rtol=1e-6)
    assert zscore_within_runs(Y, runs, eps=1.0)[4:, 1].tolist() == [0, 0, 0, 0]


def test_zscore_with_train_eps_and_messages():
    X = np.c_[np.arange(6.0), [0, 1e-9, 0, 1e-9, 0, 1e-9], [0, 0.5, 0, 0.5, 0, 0.5]]
    Z = zscore_with_train(X, np.arange(4))
    assert np.all(Z[:, 1] == 0) and Z.dtype == np.float32
    np.testing.assert_allclose(Z[:4, 2], [-1, 1, -1, 1], rtol=1e-6)
    np.testing.assert_allclose(Z[:, 0], (np.arange(6) - 1.5) / np.arange(4.0).std(), rtol=1e-6)
    assert np.all(zscore_with_train(X, np.arange(4), eps=1.0)[:, 2] == 0)
    assert np.abs(zscore_with_train(X, np.arange(4), eps=1e-12)[:, 1]).max() == pytest.approx(1.0)
    np.testing.assert_array_equal(zscore_with_train(X, [0, 1]), zscore_with_train(X, np.r_[True, True, [False] * 4]))
    with pytest.raises(ValueError, match=r"^X must be 2-D \(n_samples, n_columns\), got shape \(3,\)\.$"):
        zscore_with_train(np.ones(3), [0, 1])
    with pytest.raises(ValueError, match=r"^train mask has shape \(5,\); give one bool per sample \(6\)\.$"):
        zscore_with_train(X, np.ones(5, bool))
    with pytest.raises(ValueError, match=r"^train selects 1 rows; at least 2 are needed for a standard deviation\.$"):
        zscore_with_train(X, np.r_[True, [False] * 5])


# ----------------------------------------------------------------------------- design.py
def test_design_delays_and_prepare_design_without_pca():
    from types import SimpleNamespace

    timing = SimpleNamespace(delays=(1, 2, 3))
    assert design_delays(timing, is_items=True) == [0]
    assert design_delays(timing, is_items=False) == [1, 2, 3] and isinstance(design_delays(timing, False), list)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 3))
    runs = np.repeat([0, 1, 2], 4)
    train, test = np.arange(8), np.arange(8, 12)
    ref = make_delayed(zscore_with_train(X, train), [0, 1], runs)
    for k in (None, 3, 5):  # no PCA when k is None or not below the number of features
        tr, te = prepare_design(X, runs, train, test, [0, 1], k)
        np.testing.assert_array_equal(tr, ref[train])
        np.testing.assert_array_equal(te, ref[test])
    tr, te = prepare_design(X, runs, train, test, [0, 1], 2)
    assert tr.shape == (8, 4) and te.shape == (4, 4)


# ----------------------------------------------------------------------------- scoring.py
def test_r2_score_matches_sklearn_and_himalayas_constant_voxel_rule():
    from sklearn.metrics import r2_score as sk_r2

    rng = np.random.default_rng(1)
    Y = rng.standard_normal((30, 4)).astype(np.float32) * 1e3 + 1e4
    Y_hat = Y + rng.standard_normal((30, 4)).astype(np.float32) * 5e2
    got = r2_score(Y, Y_hat)
    assert got.dtype == np.float64 and got.shape == (4,)
    np.testing.assert_allclose(got, sk_r2(Y.astype(np.float64), Y_hat.astype(np.float64), multioutput="raw_values"),
                               rtol=1e-7)  # the squares are float32, their sums float64
    Y[:, 1] = 3.0
    got = r2_score(Y, Y_hat)
    assert got[1] == 0.0 and np.isfinite(got).all()
    assert r2_score(Y, Y)[0] == 1.0


# ----------------------------------------------------------------------------- _validation.py
def test_check_X_messages_name_the_argument_and_the_fix():
    X = np.ones((3, 2), dtype=np.float32)
    assert check_X(X) is X
    assert check_X([[1, 2]]).dtype == np.float32
    with pytest.raises(ValueError, match=r"^Xs\[1\] must be 2-D \(n_samples, n_features\), got shape \(3,\)\. "
                                         r"Reshape your data with Xs\[1\]\.reshape\(-1, 1\) for a single feature\.$"):
        check_X(np.ones(3), "Xs[1]")
    with pytest.raises(ValueError, match=r"^X must be 2-D \(n_samples, n_features\), got shape \(1, 1, 1\)\.$"):
        check_X(np.ones((1, 1, 1)))
    for bad in (np.array([["a"]]), np.ones((2, 2), complex)):
        with pytest.raises(ValueError, match=r"^X must hold real numbers, got dtype "):
            check_X(bad)
    with pytest.raises(ValueError, match=r"Complex data not supported; pass X\.real or np\.abs\(X\)\.$"):
        check_X(np.ones((2, 2), complex))
    for shape, what in (((0, 2), "sample"), ((2, 0), "feature")):
        with pytest.raises(ValueError, match=rf"^X is empty \(shape \({shape[0]}, {shape[1]}\)\): 0 {what}\(s\) "
                                             r".*give at least one sample and one feature\.$"):
            check_X(np.ones(shape))
    X = np.ones((5, 2))
    X[3, 1], X[4, 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"^X contains NaN or inf in 2 sample\(s\) \(first: row 3\); impute or drop"):
        check_X(X)


def test_check_alphas_and_check_runs():
    a = check_alphas(3)
    assert a.dtype == np.float64 and a.tolist() == [3.0]
    assert check_alphas([1, 10]).tolist() == [1.0, 10.0]
    for bad in ([], [[1.0, 2.0]]):
        with pytest.raises(ValueError, match=r"^alphas must be a non-empty 1-D sequence, got shape "):
            check_alphas(bad)
    with pytest.raises(ValueError, match=r"^alphas must be finite and > 0, got \[0\.0, -1\.0, inf\]; use e\.g\."):
        check_alphas([1.0, 0.0, -1.0, np.inf, 2.0])
    with pytest.raises(ValueError, match=r"got \[nan\]"):
        check_alphas([np.nan])
    assert check_runs(None, 4) is None
    assert check_runs([1, 1, 2, 2], 4).tolist() == [1, 1, 2, 2]
    with pytest.raises(ValueError, match=r"^runs has shape \(3,\); give one run label per sample \(4\)\.$"):
        check_runs([1, 1, 2], 4)


# ----------------------------------------------------------------------------- held_out.py
def test_held_out_switches_to_disk_exactly_past_the_limit(tmp_path):
    names = ["a", "b", "c"]
    nbytes = 3 * 4 * 5 * 4  # three float32 (4, 5) arrays
    at = HeldOut(names, (4, 5), limit_gib=nbytes / 2**30, folder=tmp_path)
    assert not at.on_disk and at.folder is None and list(at) == names
    assert all(a.dtype == np.float32 and a.shape == (4, 5) and np.isnan(a).all() for a in at.values())
    over = HeldOut(names, (4, 5), limit_gib=(nbytes - 1) / 2**30, folder=tmp_path)
    assert over.on_disk and over.folder.parent == tmp_path and over.folder.name.startswith("brainalign-heldout-")
    assert sorted(p.name for p in over.folder.iterdir()) == ["space00000.npy", "space00001.npy", "space00002.npy"]
    assert all(a.dtype == np.float32 and a.shape == (4, 5) and np.isnan(a).all() for a in over.values())
    folder = over.folder
    over.close()
    assert not folder.exists() and over.folder is None
    over.close()  # twice is fine
    at.close()
    assert len(at) == 0


# ----------------------------------------------------------------------------- second mutmut round
def test_run_boundaries_message_says_how_to_fix_it():
    with pytest.raises(ValueError, match=r"appear in several separate stretches\. Sort the samples by run first\.$"):
        run_boundaries([0, 1, 0])


def test_a_delay_longer_than_a_run_does_not_skip_the_next_delays():
    X = np.arange(1.0, 7.0)[:, None]
    out = make_delayed(X, [7, 1], np.zeros(6))
    assert np.all(out[:, 0] == 0)
    np.testing.assert_array_equal(out[:, 1], [0, 1, 2, 3, 4, 5])


def test_zscores_are_computed_in_float64_and_eps_is_inclusive():
    rng = np.random.default_rng(5)
    Y32 = (rng.standard_normal((50, 3)) * 1e-3 + 1e3).astype(np.float32)
    runs = np.repeat([0, 1], 25)
    np.testing.assert_array_equal(zscore_within_runs(Y32, runs), zscore_within_runs(Y32.astype(np.float64), runs))
    np.testing.assert_array_equal(zscore_with_train(Y32, np.arange(30)),
                                  zscore_with_train(Y32.astype(np.float64), np.arange(30)))
    # a column whose standard deviation equals eps exactly counts as constant
    Y = np.c_[[0.0, 1.0, 0.0, 1.0], [0.0, 4.0, 0.0, 4.0]]
    assert zscore_within_runs(Y, np.zeros(4), eps=0.5)[:, 0].tolist() == [0, 0, 0, 0]
    assert zscore_with_train(Y, np.arange(4), eps=0.5)[:, 0].tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(zscore_with_train(Y, np.arange(4), eps=0.5)[:, 1], [-1, 1, -1, 1])


def test_r2_score_accumulates_in_float64_and_is_silent_on_constant_voxels():
    import warnings

    rng = np.random.default_rng(6)
    Y = (1e4 + rng.standard_normal((20000, 2))).astype(np.float32)
    Y_hat = Y + (0.5 * rng.standard_normal((20000, 2))).astype(np.float32)
    Y64, H64 = Y.astype(np.float64), Y_hat.astype(np.float64)
    ref = 1 - ((Y64 - H64) ** 2).sum(0) / ((Y64 - Y64.mean(0)) ** 2).sum(0)
    np.testing.assert_allclose(r2_score(Y, Y_hat), ref, rtol=1e-6)
    Yc = np.ones((5, 2), np.float32)
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        assert r2_score(Yc, Yc + np.float32(0.5)).tolist() == [0.0, 0.0]  # SS_res / 0
        assert r2_score(Yc, Yc).tolist() == [0.0, 0.0]  # 0 / 0


def test_held_out_close_after_the_folder_is_gone(tmp_path):
    import shutil

    h = HeldOut(["a"], (2, 2), limit_gib=0.0, folder=tmp_path)
    shutil.rmtree(h.folder)
    h.close()  # e.g. TMPDIR cleaned by the system first: nothing to delete is not an error
    assert h.folder is None


def test_splits_two_runs_and_training_sides():
    from brainalign.encoding.splits import leave_one_run_out, leave_runs_out

    runs = np.repeat([0, 1], 3)
    assert [(tr.tolist(), te.tolist()) for tr, te in leave_one_run_out(runs)] == [([3, 4, 5], [0, 1, 2]),
                                                                                  ([0, 1, 2], [3, 4, 5])]
    runs = np.repeat([0, 1, 2], 2)
    assert [tr.tolist() for tr, _ in leave_runs_out(runs, 2)] == [[4, 5], [0, 1, 2, 3]]


def test_chunk_that_fits_with_one_byte_of_room():
    from brainalign.encoding.memory import MemoryEstimate

    assert MemoryEstimate(fixed=10, per_voxel_in_chunk=1, chunk_voxels=5).chunk_that_fits(11) == 1


def test_validation_boundaries_third_round():
    from brainalign.encoding.memory import MemoryEstimate, MemoryPreflightError, check_memory
    from brainalign.encoding.splits import make_folds

    X = np.ones((2, 2))
    X[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"impute or drop those samples \(and the matching rows of Y\) before fitting\.$"):
        check_X(X)
    with pytest.raises(ValueError, match=r"got \[0\.0\]"):  # zero alone is refused too
        check_alphas([1.0, 0.0])
    with pytest.raises(ValueError, match=r"got \[-1\.0, -2\.0, -3\.0, -4\.0, -5\.0\]; "):  # the first five only
        check_alphas([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0])
    assert len(make_folds(2, 10)) == 2  # two folds are enough
    with pytest.raises(MemoryPreflightError, match=r"set chunk_voxels=1 or less"):  # room for exactly one voxel
        check_memory(MemoryEstimate(fixed=100, per_voxel_in_chunk=1000, chunk_voxels=2), 1100)
