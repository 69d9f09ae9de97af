"""LLaVA-NeXT (anyres tiles): token counts and features as LlavaNextProcessor + the plain forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.registry import load_extractor
from brainalign.features.tiny.models import build_tiny_llava_next

from vlm_fixtures import PROMPTS


@pytest.fixture(scope="module")
def llava_next(tmp_path_factory):
    return load_extractor(build_tiny_llava_next(tmp_path_factory.mktemp("tiny_llava_next")), device="cpu")


@pytest.fixture
def odd_images():
    rng = np.random.default_rng(13)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(56, 56, 3), (40, 90, 3), (90, 33, 3)]]


def test_matches_processor_and_forward(llava_next, odd_images):
    from PIL import Image
    from transformers import AutoProcessor

    ex = llava_next
    proc = AutoProcessor.from_pretrained(ex.meta["source"], local_files_only=True)
    counts = set()
    for img in odd_images:
        enc = proc(text=ex.render(PROMPTS["describe"]), images=[Image.fromarray(img)], return_tensors="pt")
        inputs, kind = ex.process_stimulus([img])
        seq = ex.tokenize(PROMPTS["describe"], ex.tokens_per_frame(inputs), kind)
        assert torch.equal(enc["input_ids"][0], seq.ids)
        counts.add(int(seq.masks.stimulus.sum()))
        with torch.inference_mode():
            ref = torch.stack(ex.model(**enc, output_hidden_states=True).hidden_states)[:, 0]
        got = ex.extract([img], {"d": PROMPTS["describe"]}, "all", pooling="mean", reuse=False)["d"].values[0]
        np.testing.assert_allclose(got, ref.mean(1).numpy(), atol=1e-5)
    assert len(counts) > 1  # aspect ratio changes the number of image tokens


@pytest.mark.parametrize("pooling", ["mean", "stimulus", "last", "generated"])
def test_reuse_equals_naive(llava_next, odd_images, pooling):
    naive = llava_next.extract(odd_images, PROMPTS, "all", pooling=pooling, reuse=False)
    reuse = llava_next.extract(odd_images, PROMPTS, "all", pooling=pooling, reuse=True)
    for name in PROMPTS:
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5
