"""Cross-validated voxelwise encoding: delays, run-wise splits, ridge."""
from brainalign.encoding.banded import BandedRidgeCV
from brainalign.encoding.delays import make_delayed, zscore_with_train, zscore_within_runs
from brainalign.encoding.estimators import ConstantVoxelWarning, RidgeCV
from brainalign.encoding.many import fit_many
from brainalign.encoding.memory import MemoryPreflightError
from brainalign.encoding.splits import (
    blocked_folds,
    leave_one_run_out,
    leave_runs_out,
    stratified_folds,
    train_test_by_runs,
)

__all__ = [
    "RidgeCV",
    "BandedRidgeCV",
    "fit_many",
    "ConstantVoxelWarning",
    "MemoryPreflightError",
    "make_delayed",
    "zscore_within_runs",
    "zscore_with_train",
    "leave_one_run_out",
    "leave_runs_out",
    "train_test_by_runs",
    "blocked_folds",
    "stratified_folds",
]
