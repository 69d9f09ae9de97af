"""Held-out predictions memory-mapped on disk (large studies) give byte-identical results and leave no files."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign.encoding.held_out import HeldOut
from small_experiment import make_small_experiment


def test_held_out_arrays_spill_to_disk_past_the_limit_and_clean_up(tmp_path):
    small = HeldOut(["a", "b"], (5, 3), limit_gib=1.0)
    assert not small.on_disk and np.isnan(small["a"]).all()
    big = HeldOut(["a", "b"], (5, 3), limit_gib=1e-9, folder=tmp_path)
    assert big.on_disk and isinstance(big["a"], np.memmap) and np.isnan(big["b"]).all()
    folder = big.folder
    assert len(list(folder.glob("*.npy"))) == 2
    big["a"][2] = 1.5
    assert big["a"][2, 0] == 1.5
    big.close()
    assert not folder.exists() and len(big) == 0


def test_pipeline_results_are_identical_with_predictions_on_disk(tmp_path, monkeypatch):
    from brainalign import pipeline
    from brainalign.config import load_config
    from brainalign.features.store import FeatureStore

    config = make_small_experiment(tmp_path / "exp", **{"analysis.n_permutations": 20})
    exp = load_config(config)
    spill = tmp_path / "tmp"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))  # where HeldOut puts its memory maps
    store = FeatureStore(tmp_path / "cache")
    seen = []
    real_init = HeldOut.__init__

    def spy(self, names, *a, **k):
        real_init(self, names, *a, **k)
        seen.append((self.on_disk, len(names)))

    monkeypatch.setattr(HeldOut, "__init__", spy)
    ram = pipeline.run(exp, base_dir=config.parent, store=store)
    disk_exp = exp.model_copy(update=dict(encoding=exp.encoding.model_copy(update=dict(predictions_in_memory_gib=1e-9))))
    disk = pipeline.run(disk_exp, base_dir=config.parent, store=store)
    n = len(ram.tables["spaces"])
    # one space's predictions at a time (pipeline.cross_validate_statistics); the second run really went through
    # memory maps
    assert seen == [(False, 1)] * n + [(True, 1)] * n
    for name in ("run_scores", "voxel_scores", "comparisons"):
        pd.testing.assert_frame_equal(ram.tables[name], disk.tables[name])
    assert not list(spill.glob("brainalign-heldout-*"))  # the memory maps were deleted at the end of the run
