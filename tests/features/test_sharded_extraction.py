"""Scale-out: (model, shard) tasks locally and on a dask LocalCluster give the single-process features."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.features.extract import extract_features
from brainalign.features.sharded import ShardTask, extract_sharded, plan_shards
from brainalign.features.store import FeatureStore

from vlm_fixtures import PROMPTS, tiny_extractor, tiny_model_dir


@pytest.fixture(scope="module")
def stimuli():
    rng = np.random.default_rng(11)
    return [rng.integers(0, 256, (56, 56, 3), dtype=np.uint8) for _ in range(5)]


@pytest.fixture(scope="module")
def models():
    return [str(tiny_model_dir("llava")), str(tiny_model_dir("qwen2_vl"))]


@pytest.fixture(scope="module")
def reference(models, stimuli):
    """Single process, no cache, one extraction call over all stimuli."""
    return {m: extract_features(tiny_extractor(a), stimuli, PROMPTS, [0, -1], pooling="last")
            for m, a in zip(models, ["llava", "qwen2_vl"])}


def test_local_shards_equal_single_process_and_resume(models, stimuli, reference, tmp_path):
    store = FeatureStore(tmp_path)
    out = extract_sharded(models, stimuli, PROMPTS, [0, -1], "last", store=store, shard_size=2, device="cpu")
    assert out.tasks_run == [ShardTask(m, a, b) for m in models for a, b in [(0, 2), (2, 4), (4, 5)]]
    assert out.entries_written == 2 * len(PROMPTS) * len(stimuli)
    for m in models:
        np.testing.assert_allclose(out.features[m], reference[m], atol=1e-6)
    # drop one entry of the first model: only its shard is planned again
    victim = next(e for e in store.entries() if e["prompt"] == "describe" and e["model"] == models[0])
    digest = victim["stimulus_sha256"]
    from brainalign.features.hf_multimodal import stimulus_digest

    index = [stimulus_digest(s) for s in stimuli].index(digest)
    store.remove([victim["key"]])
    plan = plan_shards(models[:1], stimuli, PROMPTS, [0, -1], "last", store=store, shard_size=2)
    assert plan == [ShardTask(models[0], 2 * (index // 2), min(2 * (index // 2) + 2, 5))]
    again = extract_sharded(models[:1], stimuli, PROMPTS, [0, -1], "last", store=store, shard_size=2, device="cpu")
    assert again.tasks_run == plan and again.entries_written == 1
    np.testing.assert_array_equal(again.features[models[0]], out.features[models[0]])
    # a corrupt entry exists, so it is not planned; reading back finds it and recomputes it
    entry = store.entries()[0]
    npy = store.dir / entry["key"][:2] / f"{entry['key']}.npy"
    npy.write_bytes(npy.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.warns(UserWarning, match=r"is corrupt"):
        healed = extract_sharded(models, stimuli, PROMPTS, [0, -1], "last", store=store, shard_size=2, device="cpu")
    assert healed.tasks_run == []
    for m in models:
        np.testing.assert_allclose(healed.features[m], reference[m], atol=1e-6)
    assert store.verify()[1] == []


def test_dask_cluster_equals_single_process_and_rerun_computes_nothing(models, stimuli, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    import dask

    from brainalign.features import sharded

    sharded._LOADED.clear()  # forked workers must not inherit the models the local test loaded here
    store = FeatureStore(tmp_path)
    # forked worker processes inherit the imported torch/transformers (spawned ones re-import them: ~10 s each)
    with dask.config.set({"distributed.worker.multiprocessing-method": "fork"}), \
            distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                                     silence_logs=50) as cluster, distributed.Client(cluster) as client:
        # one model, one shard per worker (model loads dominate the run time)
        out = extract_sharded(models[:1], stimuli, PROMPTS, [0, -1], "last", store=store, shard_size=3,
                              client=client, device="cpu")
        assert len(out.tasks_run) == 2 and out.entries_written == len(PROMPTS) * len(stimuli)
        loaded = client.run(lambda: len(__import__("brainalign.features.sharded").features.sharded._LOADED))
        assert sorted(loaded.values()) == [1, 1]  # each worker process loaded the model and ran a shard
        for m in models[:1]:
            assert out.features[m].shape == (len(PROMPTS), len(stimuli), 2, 64)
            np.testing.assert_allclose(out.features[m], reference[m], atol=1e-6)
        before = {e["key"]: e for e in store.entries()}
        rerun = extract_sharded(models[:1], stimuli, PROMPTS, [0, -1], "last", store=store, shard_size=3,
                                client=client, device="cpu")
    assert rerun.tasks_run == [] and rerun.entries_written == 0
    assert {e["key"]: e for e in store.entries()} == before
    for m in models[:1]:
        np.testing.assert_array_equal(rerun.features[m], out.features[m])


def test_bad_arguments_rejected(models, stimuli, tmp_path):
    store = FeatureStore(tmp_path)
    with pytest.raises(ValueError, match=r"shard_size=0"):
        extract_sharded(models, stimuli, PROMPTS, store=store, shard_size=0)
    with pytest.raises(ValueError, match=r"models is empty"):
        extract_sharded([], stimuli, PROMPTS, store=store)
    with pytest.raises(ValueError, match=r"stimuli is empty"):
        extract_sharded(models, [], PROMPTS, store=store)
