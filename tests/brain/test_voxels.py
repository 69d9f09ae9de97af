"""The one constant/non-finite voxel rule every loader applies (brainalign.brain.voxels)."""
import nibabel as nib
import numpy as np
import pytest

from brainalign.brain.voxels import mask_of_kept, varying_voxels


def test_keep_needs_finite_nonzero_sd_in_every_run_and_the_message_names_the_runs():
    sds = [np.array([1.0, 0.0, 2.0, np.nan]), np.array([1.0, 1.0, 0.0, 1.0])]
    keep, message = varying_voxels(sds, "bold.nii.gz", run_names=["run-1_bold.nii.gz", "run-2_bold.nii.gz"])
    np.testing.assert_array_equal(keep, [True, False, False, False])
    assert message.startswith("bold.nii.gz: 3 mask voxels are constant within a run or non-finite (3 of 4; ")
    assert "run-1_bold.nii.gz: 2, run-2_bold.nii.gz: 1" in message and message.endswith("excluded from the analysis.")


def test_nothing_excluded_gives_no_message():
    keep, message = varying_voxels([np.ones(3)], "x")
    assert keep.all() and message is None


def test_mask_of_kept_keeps_the_c_order_columns():
    mask = np.zeros((2, 2, 2), dtype=np.uint8)
    mask[0, 0, 1] = mask[1, 0, 0] = mask[1, 1, 1] = 1
    img = mask_of_kept(mask, np.array([True, False, True]), np.eye(4))
    assert isinstance(img, nib.Nifti1Image)
    got = np.asarray(img.dataobj)
    assert got[0, 0, 1] == 1 and got[1, 0, 0] == 0 and got[1, 1, 1] == 1 and got.sum() == 2
    with pytest.raises(ValueError, match="keep has 2 entries but the mask has 3 voxels"):
        mask_of_kept(mask, np.array([True, False]), np.eye(4))
