"""Models in bfloat16 / on a named device through the one loading helper (features.hf_loading), on the CPU.

No GPU is needed: bfloat16 runs on the CPU, and a CUDA device is checked against what torch sees (monkeypatched
to "no GPU" so that the tests say the same on a GPU machine).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from brainalign.config import ConfigError, ModelSpec, load_config
from brainalign.features.hf_loading import check_device, resolve_dtype
from brainalign.features.hf_text import TextExtractor
from brainalign.features.store import FeatureStore

from test_config import DEMO

TEXTS = ["All bloops are razzies.", "Some razzies are not lazzies, it is not the case that", "True False"]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    from brainalign.steering.models import build_tiny_causal_lm

    # initializer_range 0.2: activations of a trained model's scale, so bf16 rounding is visible in the features
    return build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "qwen2", "qwen2", hidden_size=64, num_layers=3,
                                seed=0, initializer_range=0.2)


@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_bfloat16_text_features_match_float32_within_bf16_rounding(lm_dir):
    f32 = TextExtractor(str(lm_dir), device="cpu").embed(TEXTS, "all")
    ex = TextExtractor(str(lm_dir), dtype="bfloat16", device="cpu")
    b16 = ex.embed(TEXTS, "all")
    import torch

    assert ex._model.dtype == torch.bfloat16  # the weights really are bfloat16
    assert b16.dtype == np.float32 and b16.shape == f32.shape
    rel = np.abs(b16 - f32).max() / np.abs(f32).max()
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-8 = 0.4 %); three layers of it stay within a few %,
    # and the features differ at all (the dtype reached the model)
    assert 1e-4 < rel < 5e-2, rel
    for pooling in ("last", "cls"):
        a = TextExtractor(str(lm_dir), device="cpu", pooling=pooling).embed(TEXTS, [-1])
        b = TextExtractor(str(lm_dir), dtype="bfloat16", device="cpu", pooling=pooling).embed(TEXTS, [-1])
        assert np.abs(a - b).max() / np.abs(a).max() < 5e-2


def test_bfloat16_features_are_cached_as_float32_under_their_own_key(lm_dir, tmp_path):
    store = FeatureStore(tmp_path / "cache")
    f32 = TextExtractor(str(lm_dir), device="cpu")
    b16 = TextExtractor(str(lm_dir), dtype="bfloat16", device="cpu")
    assert f32.fingerprint() != b16.fingerprint() and "dtype=bfloat16" in b16.fingerprint()
    assert "dtype" not in f32.fingerprint()  # float32 fingerprints (and their cache entries) are unchanged
    got = b16.embed_cached(TEXTS, [0, 3], store)
    key = FeatureStore.key(b16.fingerprint(), TEXTS[0], [0, 3])
    stored = store.get(key)
    assert stored is not None and stored.dtype == np.float32
    np.testing.assert_array_equal(stored, got[0])
    assert not store.has(FeatureStore.key(f32.fingerprint(), TEXTS[0], [0, 3]))


def test_auto_dtype_is_the_checkpoints_own(lm_dir, tmp_path):
    import shutil

    assert resolve_dtype("auto", str(lm_dir)) == "float32"
    copy = shutil.copytree(lm_dir, tmp_path / "bf16")
    cfg = json.loads((copy / "config.json").read_text())
    cfg["dtype"] = "bfloat16"
    (copy / "config.json").write_text(json.dumps(cfg))
    assert resolve_dtype("auto", str(copy)) == "bfloat16"
    assert "dtype=bfloat16" in TextExtractor(str(copy), dtype="auto").fingerprint()
    with pytest.raises(ValueError, match="dtype='float64'"):
        resolve_dtype("float64")


def test_config_rejects_a_bad_dtype_or_device_naming_the_field():
    with pytest.raises(ConfigError, match=r"models\.0\.dtype"):
        load_config(DEMO, ["models.0.dtype=float64"])
    with pytest.raises(ConfigError, match=r"models\.0\.device"):
        load_config(DEMO, ["models.0.device=gpu0"])


def test_validate_rejects_cuda_without_a_gpu(no_cuda):
    from brainalign.pipeline.checks import check_models

    exp = load_config(DEMO, ["models.0.device=cuda", "models.0.dtype=bfloat16"])  # loads: plans need no GPU
    with pytest.raises(ConfigError, match="sees no CUDA GPU") as err:
        check_models(exp, DEMO.parent)
    assert err.value.field == "models.0.device" and "device: cpu" in str(err.value)
    check_models(load_config(DEMO, ["models.0.device=cpu"]), DEMO.parent)


def test_device_auto_needs_accelerate_and_says_how_to_get_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "accelerate" else real(name, *a))
    with pytest.raises(ValueError, match=r"accelerate.*pip install"):
        check_device("auto", "models.0.device")


def test_text_extractor_refuses_cuda_it_cannot_see(lm_dir, no_cuda):
    with pytest.raises(ValueError, match="device='cuda:1'"):
        TextExtractor(str(lm_dir), device="cuda:1").embed(["x y"], [0])
    with pytest.raises(ValueError, match="dtype"):
        TextExtractor(str(lm_dir), dtype="fp8")


def test_modelspec_defaults_keep_float32():
    spec = ModelSpec(name="m", source="x")
    assert spec.dtype == "float32" and spec.device is None
