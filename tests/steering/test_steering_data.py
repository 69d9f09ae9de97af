from __future__ import annotations

import numpy as np
import pytest

from brainalign.steering import data
from brainalign.steering.hooks import seed_layer_stack


def test_missing_ds003076_files_are_named(tmp_path):
    text = data.describe_missing(tmp_path)
    assert text.startswith("60 of 60 ds003076 input files are missing")  # 10 subjects x (4 events + 2 betas)
    assert "sub-1034" in text and "all_extracted_beta_transitive" in text
    assert "sub-1034/func/sub-1034_task-Transitive_run-02_events.tsv" in text
    for p in data.expected_files(tmp_path):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert data.describe_missing(tmp_path) == ""
    victim = next(iter(data.expected_files(tmp_path, ["sub-1001"])))
    victim.unlink()
    assert list(data.missing_files(tmp_path)) == [victim]


def test_seed_layer_stack():
    a, r = np.zeros((3, 2, 4)), np.ones((3, 2, 4))
    s = seed_layer_stack({"attention": a, "residual": r})
    assert s.shape == (3, 4, 4) and s[:, :2].sum() == 0 and s[:, 2:].min() == 1
    with pytest.raises(ValueError, match="differ"):
        seed_layer_stack({"attention": a, "residual": r[:, :1]})
