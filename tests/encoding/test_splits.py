"""Run-wise, blocked and stratified cross-validation folds."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.encoding.splits import (
    blocked_folds,
    leave_one_run_out,
    leave_runs_out,
    stratified_folds,
    train_test_by_runs,
)


def _check_partition(folds, n):
    tests = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tests), np.arange(n))  # every sample tested exactly once
    for tr, te in folds:
        assert np.intersect1d(tr, te).size == 0


def test_run_folds_never_split_a_run():
    runs = np.repeat([4, 1, 3, 0, 2], [3, 5, 4, 6, 2])
    for folds in (leave_one_run_out(runs), leave_runs_out(runs, 3)):
        _check_partition(folds, runs.size)
        for tr, te in folds:
            assert not np.isin(runs[tr], runs[te]).any()
    assert len(leave_runs_out(runs, 3)) == 3
    with pytest.raises(ValueError, match="n_folds=6 but there are 5 runs"):
        leave_runs_out(runs, 6)
    with pytest.raises(ValueError, match="at least 2 runs"):
        leave_one_run_out(np.zeros(4))


def test_train_test_by_runs():
    runs = np.repeat([0, 1, 2], 4)
    tr, te = train_test_by_runs(runs, [2])
    assert set(runs[te]) == {2} and set(runs[tr]) == {0, 1}
    with pytest.raises(ValueError, match="do not exist"):
        train_test_by_runs(runs, [7])


def test_blocked_folds_contiguous_with_gap():
    folds = blocked_folds(23, 4, gap=2)
    _check_partition(folds, 23)
    for tr, te in folds:
        assert np.all(np.diff(te) == 1)
        dist = np.abs(tr[:, None] - te[None, :]).min(1)
        assert dist.min() > 2  # buffer of 2 samples on each side
    with pytest.raises(ValueError, match="n_folds=1"):
        blocked_folds(10, 1)
    with pytest.raises(ValueError, match="reduce gap"):
        blocked_folds(10, 2, gap=10)


def test_stratified_folds_keep_label_proportions_and_items_together():
    rng = np.random.default_rng(0)
    labels = np.repeat(["face", "house", "tool"], [40, 20, 20])
    folds = stratified_folds(labels, 4, seed=3)
    _check_partition(folds, labels.size)
    for _, te in folds:
        vals, counts = np.unique(labels[te], return_counts=True)
        assert dict(zip(vals, counts)) == {"face": 10, "house": 5, "tool": 5}
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, stratified_folds(labels, 4, seed=3)))
    # items repeated 2x: each item entirely in one test fold
    items = np.repeat(np.arange(30), 2)
    item_labels = np.repeat(rng.permutation(np.repeat([0, 1, 2], 10)), 2)
    gfolds = stratified_folds(item_labels, 5, groups=items, seed=1)
    _check_partition(gfolds, items.size)
    for tr, te in gfolds:
        assert not np.isin(items[tr], items[te]).any()
    with pytest.raises(ValueError, match="has only 20 samples"):
        stratified_folds(labels, 21)
