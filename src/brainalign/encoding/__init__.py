"""Cross-validated voxelwise encoding: delays, run-wise splits, ridge."""
from brainalign.encoding.delays import make_delayed, zscore_within_runs
from brainalign.encoding.splits import leave_one_run_out, leave_runs_out, train_test_by_runs

__all__ = ["make_delayed", "zscore_within_runs", "leave_one_run_out", "leave_runs_out", "train_test_by_runs"]
