"""The same config and seed give identical tables, from independent feature caches (permutation p-values
included); a different seed changes the seeded parts only."""
from __future__ import annotations

import pandas as pd

from brainalign import pipeline
from brainalign.config import load_config
from brainalign.features.store import FeatureStore

from small_experiment import make_small_experiment


def test_same_config_and_seed_give_identical_tables(tmp_path):
    cfg = make_small_experiment(tmp_path, n_runs=3, layers=(6,), **{"analysis.n_permutations": 20,
                                                                     "analysis.baselines": ["onoff",
                                                                                            "category_shuffled"]})
    exp = load_config(cfg)
    runs = [pipeline.run(exp, cfg.parent, store=FeatureStore(tmp_path / f"cache{i}")) for i in range(2)]
    assert runs[0].manifest["feature_cache"]["misses"] == runs[1].manifest["feature_cache"]["misses"] > 0
    for name, table in runs[0].tables.items():
        pd.testing.assert_frame_equal(table, runs[1].tables[name], check_exact=True, obj=name)
    assert runs[0].tables["voxel_scores"]["p"].notna().all()  # the permutation test did run

    other = pipeline.run(exp.model_copy(update=dict(seed=1)), cfg.parent, store=FeatureStore(tmp_path / "cache0"))
    vox0, vox1 = runs[0].tables["voxel_scores"], other.tables["voxel_scores"]
    assert not vox0["p"].equals(vox1["p"])  # seeded permutations differ
    fixed = vox0["space"] == "baseline/onoff"  # a space without any randomness is unchanged
    pd.testing.assert_series_equal(vox0.loc[fixed, "r"], vox1.loc[fixed, "r"], check_exact=True)
