"""Unimodal image-encoder baselines through the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.registry import load_extractor
from brainalign.features.tiny.models import build_tiny_clip, build_tiny_vit

from vlm_fixtures import PROMPTS, images  # noqa: F401 - pytest fixtures


@pytest.fixture(scope="module", params=["vit", "clip"])
def encoder(request, tmp_path_factory):
    build = {"vit": build_tiny_vit, "clip": build_tiny_clip}[request.param]
    return request.param, load_extractor(build(tmp_path_factory.mktemp(f"tiny_{request.param}")), device="cpu")


def _direct_states(ex, image):
    pix = ex.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        return torch.stack(ex.encoder(pixel_values=pix, output_hidden_states=True).hidden_states)[:, 0]


def test_features_match_the_encoder(encoder, images):
    kind, ex = encoder
    assert ex.n_layers == 2 and ex.model_type == kind
    ex.batch_size = 1  # batching must not change the features
    single = ex.extract(images, None, "all")["none"]
    ex.batch_size = 16
    batched = ex.extract(images, None, "all")["none"]
    np.testing.assert_allclose(single.values, batched.values, atol=1e-5)
    ref = _direct_states(ex, images[1])
    assert single.values.shape == (2, 3, 32)
    np.testing.assert_allclose(single.values[1], ref.mean(1).numpy(), atol=1e-5)
    cls = ex.extract(images, None, [-1], pooling="cls")["none"]
    np.testing.assert_allclose(cls.values[1, 0], ref[-1, 0].numpy(), atol=1e-5)


def test_prompt_names_share_values(encoder, images):
    _, ex = encoder
    out = ex.extract(images, PROMPTS, [0.5])
    assert list(out) == list(PROMPTS) and out["caption"].layers == [1]
    np.testing.assert_array_equal(out["caption"].values, out["people"].values)


def test_bad_input(encoder, images):
    _, ex = encoder
    with pytest.raises(ValueError, match=r"pooling='last' is not supported by image encoders"):
        ex.extract(images, None, "all", pooling="last")
    with pytest.raises(ValueError, match=r"layers=\[3\].*out of range"):
        ex.extract(images, None, [3])
    with pytest.raises(ValueError, match=r"stimuli\[1\] has dtype float64"):
        ex.extract([images[0], images[1] / 255.0], None, "all")
