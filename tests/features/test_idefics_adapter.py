"""IDEFICS v1 (the NSD study's IDEFICS-9B-instruct): inputs as IdeficsProcessor, features as the plain forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.hf_idefics import idefics_image_attention_mask
from brainalign.features.hf_multimodal import Video
from brainalign.features.pooling import GenerationConfig
from brainalign.features.registry import load_extractor
from brainalign.features.tiny.extra import build_tiny_idefics

from vlm_fixtures import PROMPTS, images  # noqa: F401 - pytest fixtures


@pytest.fixture(scope="module")
def idefics(tmp_path_factory):
    torch.set_num_threads(1)
    return load_extractor(build_tiny_idefics(tmp_path_factory.mktemp("tiny_idefics")), device="cpu")


def _processor_inputs(ex, frames, prompt):
    from PIL import Image
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(ex.meta["source"], local_files_only=True)
    items = ["User:", *[Image.fromarray(f) for f in frames], prompt + "<end_of_utterance>\nAssistant:"]
    return proc(text=[items], add_end_of_utterance_token=False, return_tensors="pt")


@pytest.mark.parametrize("n_frames", [1, 2])
def test_inputs_and_features_match_the_processor(idefics, images, n_frames):
    ex = idefics
    frames = images[:n_frames]
    enc = _processor_inputs(ex, frames, PROMPTS["people"])
    inputs, kind = ex.process_stimulus(frames)
    seq = ex.tokenize(PROMPTS["people"], ex.tokens_per_frame(inputs), kind)
    assert torch.equal(enc["input_ids"][0], seq.ids)
    assert int(seq.masks.stimulus.sum()) == n_frames
    assert torch.equal(ex.model_inputs(seq.ids[None], inputs)["image_attention_mask"], enc["image_attention_mask"])
    np.testing.assert_allclose(inputs["pixel_values"].numpy(), enc["pixel_values"].numpy(), atol=1e-6)
    with torch.inference_mode():
        ref = torch.stack(ex.model(**enc, output_hidden_states=True).hidden_states)[:, 0].numpy()
    for pooling, want in [("last", ref[:, -1]), ("mean", ref.mean(1)),
                          ("stimulus", ref[:, seq.masks.stimulus.numpy()].mean(1))]:
        got = ex.extract([frames], {"p": PROMPTS["people"]}, "all", pooling=pooling, reuse=False)["p"]
        assert got.values.shape == (1, 3, 64)
        np.testing.assert_allclose(got.values[0], want, atol=1e-5)


def test_image_attention_mask_rule():
    # ids: text, image 0, text, eos, text, image 1, text
    img, eos = 9, 2
    ids = torch.tensor([5, img, 6, eos, 7, img, 8])
    mask = idefics_image_attention_mask(ids, img, eos, 2)
    assert mask.tolist() == [[0, 0], [1, 0], [1, 0], [1, 0], [0, 0], [0, 1], [0, 1]]


def test_the_image_matters(idefics, images):
    out = idefics.extract(images, PROMPTS, [-1], pooling="last")["caption"].values
    assert np.abs(out[0] - out[1]).max() > 1e-3  # cross-attention gates are live in the tiny model


@pytest.mark.parametrize("pooling", ["mean", "stimulus", "prompt", "last", "generated"])
def test_reuse_equals_naive(idefics, images, pooling):
    stimuli = images + [images]  # two single images and one two-image stimulus
    gen = GenerationConfig(max_new_tokens=4)
    naive = idefics.extract(stimuli, PROMPTS, "all", pooling=pooling, reuse=False, generation=gen)
    reuse = idefics.extract(stimuli, PROMPTS, "all", pooling=pooling, reuse=True, generation=gen)
    for name in PROMPTS:
        assert naive[name].values.shape == (3, 3, 64)
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5
        if pooling == "generated":
            assert naive[name].meta["generated_text"] == reuse[name].meta["generated_text"]


def test_components(idefics, images):
    vision = idefics.extract(images, PROMPTS, "all", component="vision")["caption"]
    connector = idefics.extract(images, PROMPTS, "all", component="connector")["caption"]
    attn_naive = idefics.extract(images, PROMPTS, "all", component="attention", reuse=False)["caption"]
    attn_reuse = idefics.extract(images, PROMPTS, "all", component="attention", reuse=True)["caption"]
    assert vision.values.shape == (2, 3, 32) and connector.values.shape == (2, 1, 32)
    assert attn_naive.layers == [1, 2]
    assert np.abs(attn_naive.values - attn_reuse.values).max() <= 1e-5


def test_bad_inputs_rejected(idefics, images):
    with pytest.raises(ValueError, match=r"idefics adapter takes no video input"):
        idefics.extract([Video(np.stack(images))], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"shape \(56, 56\); images must be \(H, W, 3\)"):
        idefics.extract([images[0][..., 0]], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"prompts\['x'\] is empty"):
        idefics.extract(images, {"x": " "}, "all")
