"""Idefics2 through the shared adapter contract, checked against the real Idefics2Processor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.registry import load_extractor
from brainalign.features.tiny.models import build_tiny_idefics2

from vlm_fixtures import PROMPTS, images  # noqa: F401 - pytest fixtures


@pytest.fixture(scope="module")
def idefics2(tmp_path_factory):
    return load_extractor(build_tiny_idefics2(tmp_path_factory.mktemp("tiny_idefics2")), device="cpu")


@pytest.mark.parametrize("splitting", [False, True])
@pytest.mark.parametrize("n_frames", [1, 2])
def test_inputs_and_features_match_the_processor(idefics2, images, splitting, n_frames):
    from PIL import Image
    from transformers import AutoProcessor

    ex = idefics2
    proc = AutoProcessor.from_pretrained(ex.meta["source"], local_files_only=True)
    frames = images[:n_frames]
    ex.image_processor.do_image_splitting = proc.image_processor.do_image_splitting = splitting
    try:
        enc = proc(text=ex.render(PROMPTS["people"], n_frames), images=[Image.fromarray(f) for f in frames],
                   return_tensors="pt")
        inputs, kind = ex.process_stimulus(frames)
        seq = ex.tokenize(PROMPTS["people"], ex.tokens_per_frame(inputs), kind)
        assert torch.equal(enc["input_ids"][0], seq.ids)
        assert int(seq.masks.stimulus.sum()) == n_frames * 4 * (5 if splitting else 1)
        with torch.inference_mode():
            ref = torch.stack(ex.model(**enc, output_hidden_states=True).hidden_states)[:, 0]
        got = ex.extract([frames], {"p": PROMPTS["people"]}, "all", pooling="last", reuse=False)["p"].values[0]
        np.testing.assert_allclose(got, ref[:, -1].numpy(), atol=1e-5)
    finally:
        ex.image_processor.do_image_splitting = False


@pytest.mark.parametrize("pooling", ["mean", "stimulus", "prompt", "last", "generated"])
def test_reuse_equals_naive(idefics2, images, pooling):
    stimuli = images + [images]  # two single images and one two-frame stimulus
    naive = idefics2.extract(stimuli, PROMPTS, "all", pooling=pooling, reuse=False)
    reuse = idefics2.extract(stimuli, PROMPTS, "all", pooling=pooling, reuse=True)
    for name in PROMPTS:
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5
