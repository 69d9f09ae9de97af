"""The modality encoder of a VLM reads ``batch_size`` stimuli per call, and the features equal one-by-one encoding.

Qwen-VL concatenates images of different sizes (its vision tower attends within each image's grid) and LLaVA
stacks images resized to one size: neither pads, so a batch gives the same connector output per stimulus up to
float rounding (here exactly, on the CPU). The count of encoder calls shows that the batch is real.
"""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.features.pooling import GenerationConfig
from brainalign.features.registry import load_extractor

from vlm_fixtures import tiny_model_dir

PROMPTS = {"describe": "Describe this image.", "people": "Are there people?"}


def _images(sizes):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def _counting(ex):
    calls = []
    encode = ex.encode_image

    def counted(inputs, vision_states=False):
        calls.append(1)
        return encode(inputs, vision_states)

    ex.encode_image = counted
    return calls


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "llava"])
def test_batched_image_encoding_equals_one_by_one(arch):
    import torch

    torch.set_num_threads(1)
    images = _images([(56, 56), (84, 56), (56, 56), (56, 84), (84, 84)])  # Qwen: grids of three sizes
    one = load_extractor(tiny_model_dir(arch), device="cpu", batch_size=1)
    three = load_extractor(tiny_model_dir(arch), device="cpu", batch_size=3)
    calls_one, calls_three = _counting(one), _counting(three)
    for component in ("language", "connector"):
        a = one.extract(images, PROMPTS, [0, -1], component=component)
        b = three.extract(images, PROMPTS, [0, -1], component=component)
        for name in PROMPTS:
            assert a[name].values.shape[0] == len(images)
            np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-5, atol=1e-6)
    assert len(calls_one) == 2 * 5 and len(calls_three) == 2 * 2  # ceil(5 / 3) encoder calls per extraction
    # decoding reads the same batched connector output
    gen = GenerationConfig(max_new_tokens=2)
    a = one.extract(images[:3], PROMPTS, [-1], pooling="generated", generation=gen)
    b = three.extract(images[:3], PROMPTS, [-1], pooling="generated", generation=gen)
    for name in PROMPTS:
        assert a[name].meta["generated_text"] == b[name].meta["generated_text"]
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=1e-5, atol=1e-6)


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size=0"):
        load_extractor(tiny_model_dir("llava"), device="cpu", batch_size=0)
