"""Fold makers of encoding/splits.py against scikit-learn's splitters, their boundaries and messages, and the outer
folds a config names (written from mutmut survivors)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from brainalign.encoding.splits import (
    blocked_folds, leave_one_run_out, leave_runs_out, make_folds, outer_folds, stratified_folds, train_test_by_runs,
)


def _eq(folds, ref):
    assert len(folds) == len(ref)
    for (a, b), (c, d) in zip(folds, ref):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_run_folds_match_sklearn_group_splitters():
    from sklearn.model_selection import LeaveOneGroupOut

    runs = np.repeat([4, 1, 3, 0, 2], [3, 5, 4, 6, 2])
    _eq(leave_one_run_out(runs), list(LeaveOneGroupOut().split(runs, groups=runs)))
    folds = leave_runs_out(runs, 2)  # contiguous groups of sorted labels: {0, 1, 2} and {3, 4}
    assert [sorted(set(runs[te])) for _, te in folds] == [[0, 1, 2], [3, 4]]
    assert len(leave_runs_out(runs, 5)) == 5
    for bad in (1, 6):
        with pytest.raises(ValueError, match=rf"^n_folds={bad} but there are 5 runs; choose 2 <= n_folds <= 5\.$"):
            leave_runs_out(runs, bad)
    with pytest.raises(ValueError, match=r"^leave-one-run-out needs at least 2 runs, got 1 \(\[0\]\); use blocked"):
        leave_one_run_out(np.zeros(4, int))
    for bad in (np.zeros((2, 2)), np.array([])):
        with pytest.raises(ValueError, match=r"^runs must be a non-empty 1-D array of run labels, got shape "):
            leave_one_run_out(bad)


def test_train_test_by_runs_boundaries():
    runs = np.repeat([0, 1, 2], 2)
    tr, te = train_test_by_runs(runs, 1)  # a single run label
    assert tr.tolist() == [0, 1, 4, 5] and te.tolist() == [2, 3]
    tr, te = train_test_by_runs(runs, [0, 2])
    assert tr.tolist() == [2, 3] and te.tolist() == [0, 1, 4, 5]
    with pytest.raises(ValueError, match=r"^test_runs \[7, 9\] do not exist; the data have runs \[0, 1, 2\]\.$"):
        train_test_by_runs(runs, [1, 7, 9])
    with pytest.raises(ValueError, match=r"^test_runs holds every run; leave at least one run for training\.$"):
        train_test_by_runs(runs, [0, 1, 2])


def test_blocked_folds_boundaries():
    folds = blocked_folds(6, 3)  # default gap 0: each block trains on every other sample
    assert [te.tolist() for _, te in folds] == [[0, 1], [2, 3], [4, 5]]
    assert [tr.tolist() for tr, _ in folds] == [[2, 3, 4, 5], [0, 1, 4, 5], [0, 1, 2, 3]]
    assert [tr.tolist() for tr, _ in blocked_folds(6, 3, gap=1)] == [[3, 4, 5], [0, 5], [0, 1, 2]]
    assert len(blocked_folds(4, 4)) == 4 and len(blocked_folds(2.0, 2)) == 2
    with pytest.raises(ValueError, match=r"^n_folds=5 must be between 2 and n_samples=4\.$"):
        blocked_folds(4, 5)
    with pytest.raises(ValueError, match=r"^gap=-1 must be >= 0 \(samples dropped around each test block\)\.$"):
        blocked_folds(6, 2, gap=-1)
    with pytest.raises(ValueError, match=r"^gap=3 leaves no training sample for the block 0\.\.2; reduce gap\.$"):
        blocked_folds(6, 2, gap=3)


def test_stratified_folds_match_sklearn_and_name_the_short_label():
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    labels = np.repeat(["a", "b"], [6, 4])
    _eq(stratified_folds(labels, 2), list(StratifiedKFold(2, shuffle=True, random_state=0).split(labels, labels)))
    _eq(stratified_folds(labels, 4, seed=5),
        list(StratifiedKFold(4, shuffle=True, random_state=5).split(labels, labels)))
    groups = np.repeat(np.arange(5), 2)
    lab = np.repeat(["a", "a", "a", "b", "b"], 2)
    _eq(stratified_folds(lab, 2, groups=groups, seed=3),
        list(StratifiedGroupKFold(2, shuffle=True, random_state=3).split(lab, lab, groups)))
    with pytest.raises(ValueError, match=r"^n_folds=3 but label 'b' has only 2 items; choose 2 <= n_folds <= 2\.$"):
        stratified_folds(lab, 3, groups=groups)
    with pytest.raises(ValueError, match=r"^n_folds=5 but label 'b' has only 4 samples; choose 2 <= n_folds <= 4\.$"):
        stratified_folds(labels, 5)
    with pytest.raises(ValueError, match=r"^n_folds=1 but label "):
        stratified_folds(labels, 1)
    with pytest.raises(ValueError, match=r"^groups has shape \(3,\); give one item id per sample \(10\)\.$"):
        stratified_folds(labels, 2, groups=[0, 1, 2])


def test_outer_folds_follow_the_config():
    runs = np.repeat([0, 1, 2, 3], 2)
    _eq(outer_folds(SimpleNamespace(outer_cv="leave-one-run-out", item_folds=0), runs), leave_one_run_out(runs))
    # item data: runs numbered item_folds and up are the test split
    _eq(outer_folds(SimpleNamespace(outer_cv="split", item_folds=2), runs), [train_test_by_runs(runs, [2, 3])])
    _eq(outer_folds(SimpleNamespace(outer_cv="split", item_folds=3), runs), [train_test_by_runs(runs, [3])])
    _eq(outer_folds(SimpleNamespace(outer_cv=[1], item_folds=0), runs), [train_test_by_runs(runs, [1])])


def test_make_folds_from_ints_splitters_and_lists():
    from sklearn.model_selection import GroupKFold, KFold

    _eq(make_folds(3, 10), list(KFold(3).split(np.zeros(10))))
    _eq(make_folds(10, 10), list(KFold(10).split(np.zeros(10))))
    runs = np.repeat([0, 1, 2], [3, 3, 4])
    _eq(make_folds(3, 10, runs), leave_runs_out(runs, 3))
    _eq(make_folds(GroupKFold(2), 10, runs), list(GroupKFold(2).split(np.zeros((10, 1)), groups=runs)))
    mask = np.zeros(4, bool)
    mask[:2] = True
    folds = make_folds([(mask, ~mask), ([2, 3], [0])], 4)
    assert [(a.tolist(), b.tolist()) for a, b in folds] == [([0, 1], [2, 3]), ([2, 3], [0])]
    assert all(a.dtype == np.intp and b.dtype == np.intp for a, b in folds)
    with pytest.raises(ValueError, match=r"^cv=4 folds but runs has only 3 distinct runs; use cv <= 3 or split"):
        make_folds(4, 10, runs)
    for bad in (1, 11):
        with pytest.raises(ValueError, match=rf"^cv={bad} must be between 2 and n_samples=10\.$"):
            make_folds(bad, 10)
    with pytest.raises(ValueError, match=r"^cv must be an int, a scikit-learn splitter or a list of \(train, test\) "
                                         r"index arrays; got bool\.$"):
        make_folds(True, 10)
    with pytest.raises(ValueError, match=r"^cv produced no folds; give at least one \(train, test\) pair\.$"):
        make_folds([], 10)
    with pytest.raises(ValueError, match=r"^cv fold 1 has an empty train or test set; check the cv argument\.$"):
        make_folds([([0], [1]), ([], [1])], 4)
    with pytest.raises(ValueError, match=r"^cv fold 0 has an empty train or test set"):
        make_folds([([0], [])], 4)
    for bad in ([([0], [4])], [([4], [0])], [([-1], [0])], [([0], [-1])]):
        with pytest.raises(ValueError, match=r"^cv fold 0 has indices outside \[0, 4\); the folds must index the rows"):
            make_folds(bad, 4)
    assert make_folds([([0], [3])], 4)[0][1].tolist() == [3]
