"""extract_features through the FeatureStore: no model load when cached, resumable per stimulus chunk."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.features import registry
from brainalign.features.extract import extract_features
from brainalign.features.store import FeatureStore

from vlm_fixtures import PROMPTS, extractors, images, model_dirs  # noqa: F401 - pytest fixtures


@pytest.fixture
def stimuli(images):
    rng = np.random.default_rng(11)
    return images + [rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)]


def test_cold_then_warm_loads_no_model(tmp_path, model_dirs, stimuli, monkeypatch):
    store = FeatureStore(tmp_path)
    path = model_dirs["llava"]
    direct = extract_features(path, stimuli, PROMPTS, layers=[-1, 0.5], pooling="last")
    cold = extract_features(path, stimuli, PROMPTS, layers=[-1, 0.5], pooling="last", store=store)
    np.testing.assert_allclose(cold, direct, atol=1e-6)
    assert store.misses == len(PROMPTS) * len(stimuli)

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded although every entry is cached")

    monkeypatch.setattr(registry, "load_extractor", no_loading)
    warm = extract_features(path, stimuli, PROMPTS, layers=[-1, 0.5], pooling="last", store=store)
    np.testing.assert_array_equal(warm, cold)
    assert store.hits == len(PROMPTS) * len(stimuli)
    # different settings are different entries (and would need the model)
    with pytest.raises(AssertionError, match=r"a model was loaded"):
        extract_features(path, stimuli, PROMPTS, layers=[-1, 0.5], pooling="mean", store=store)


def test_resumes_after_a_crash(tmp_path, extractors, stimuli):
    """A crash mid-way keeps the finished chunks; the rerun computes only the rest."""
    store = FeatureStore(tmp_path)
    ex = extractors["qwen2_5_vl"]
    seen: list[int] = []
    crash = {"on_call": 2}
    original = ex.extract

    def flaky(stims, *args, **kwargs):
        seen.append(len(stims))
        if len(seen) == crash["on_call"]:
            raise RuntimeError("killed")
        return original(stims, *args, **kwargs)

    ex.extract = flaky
    try:
        with pytest.raises(RuntimeError, match="killed"):
            extract_features(ex, stimuli, PROMPTS, layers=[-1], store=store, chunk_size=1)
        assert seen == [1, 1]
        seen.clear()
        crash["on_call"] = None
        resumed = extract_features(ex, stimuli, PROMPTS, layers=[-1], store=store, chunk_size=1)
    finally:
        del ex.extract
    assert seen == [1, 1]  # stimulus 0 came from the cache, 1 and 2 were computed
    np.testing.assert_allclose(resumed, extract_features(ex, stimuli, PROMPTS, layers=[-1]), atol=1e-6)


def test_same_pixels_share_entries(tmp_path, extractors, stimuli):
    store = FeatureStore(tmp_path)
    ex = extractors["llava"]
    extract_features(ex, stimuli[:1], PROMPTS, layers=[-1], store=store)
    out = extract_features(ex, [stimuli[0].copy(), stimuli[1]], PROMPTS, layers=[-1], store=store)
    assert store.hits == len(PROMPTS) and store.misses == 2 * len(PROMPTS)
    assert out.shape == (3, 2, 1, 64)


def test_lazy_features_read_the_cache_files_part_by_part(tmp_path, model_dirs, stimuli):
    """The pipeline's multimodal path (lazy=True): per prompt a StackedEntries over the verified cache files, equal
    to the stacked array, holding no loaded array (issue 19: NSD's and Movie10's features no longer sit in RAM)."""
    from brainalign.features.store import StackedEntries

    store = FeatureStore(tmp_path)
    path = model_dirs["llava"]
    stacked = extract_features(path, stimuli, PROMPTS, layers=[-1, 0.5], pooling="last", store=store)
    for fresh in (True, False):  # computed now, or every entry found
        store = store if not fresh else FeatureStore(tmp_path / "fresh")
        lazy = extract_features(path, stimuli, PROMPTS, layers=[-1, 0.5], pooling="last", store=store, lazy=True)
        assert list(lazy) == list(PROMPTS if isinstance(PROMPTS, dict) else lazy)
        for k, name in enumerate(lazy):
            F = lazy[name]
            assert isinstance(F, StackedEntries) and F.shape == stacked[k].shape and F.dtype == np.float32
            assert not any(isinstance(e, np.ndarray) for e in F._entries)  # paths only: nothing loaded
            np.testing.assert_array_equal(F[:, 1, :], stacked[k][:, 1, :])
    with pytest.raises(ValueError, match="pass store="):
        extract_features(path, stimuli, PROMPTS, layers=[-1], lazy=True)
