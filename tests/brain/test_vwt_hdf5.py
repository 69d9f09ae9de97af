"""voxelwise_tutorials HDF5: runs from run_onsets, test repeats averaged, bad files rejected."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from brainalign.brain.vwt_hdf5 import load_vwt_hdf5, read_vwt_test_repeats
from brainalign.testing.fixtures import write_vwt_hdf5


def test_runs_and_test_average(tmp_path):
    fx = write_vwt_hdf5(tmp_path / "responses" / "S01_responses.hdf")
    rec = load_vwt_hdf5(fx["path"], tr=2.0)
    assert rec.run_ids == ("train-01", "train-02", "train-03", "test")
    np.testing.assert_array_equal([(rec.runs == k).sum() for k in (1, 2, 3, 4)], [12, 10, 11, 9])
    np.testing.assert_array_equal(rec.data[rec.runs <= 3], fx["Y_train"])
    np.testing.assert_allclose(rec.data[rec.runs == 4], fx["Y_test"].astype(np.float64).mean(0), rtol=1e-6)
    assert rec.meta["test_runs"] == [4] and rec.meta["n_test_repeats"] == 3
    reps = load_vwt_hdf5(fx["path"], tr=2.0, average_test=False)
    np.testing.assert_array_equal(reps.data[reps.runs == 5], fx["Y_test"][1])
    np.testing.assert_array_equal(read_vwt_test_repeats(fx["path"], voxels=np.array([0, 3])), fx["Y_test"][:, :, [0, 3]])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="responses"):
        load_vwt_hdf5(tmp_path / "nope.hdf", tr=2.0)
    p = tmp_path / "bad.hdf"
    with h5py.File(p, "w") as f:
        f["Y_train"] = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"lacks dataset\(s\) \['Y_test', 'run_onsets'\]"):
        load_vwt_hdf5(p, tr=2.0)
    fx = write_vwt_hdf5(tmp_path / "r.hdf")
    with h5py.File(fx["path"], "a") as f:
        del f["run_onsets"]
        f["run_onsets"] = np.array([0, 50])
    with pytest.raises(ValueError, match="run_onsets"):
        load_vwt_hdf5(fx["path"], tr=2.0)
