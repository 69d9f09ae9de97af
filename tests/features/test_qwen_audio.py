"""Qwen2-Audio: waveforms as stimuli, real processor parity, reuse == naive."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.pooling import GenerationConfig
from brainalign.features.registry import load_extractor
from brainalign.features.tiny.models import build_tiny_qwen2_audio

from vlm_fixtures import PROMPTS, extractors, images  # noqa: F401 - pytest fixtures


@pytest.fixture(scope="module")
def qaudio(tmp_path_factory):
    return load_extractor(build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny_qwen2_audio")), device="cpu")


@pytest.fixture
def waves():
    rng = np.random.default_rng(9)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 24000)]


def test_matches_the_real_processor_and_forward(qaudio, waves):
    from transformers import AutoProcessor

    assert qaudio.meta["processor"] == "AutoProcessor"
    proc = AutoProcessor.from_pretrained(qaudio.meta["source"], local_files_only=True)
    enc = proc(text=qaudio.render(PROMPTS["people"]), audio=waves[1], sampling_rate=16000, return_tensors="pt")
    inputs, kind = qaudio.process_stimulus(qaudio.prepare_stimuli([waves[1]], sampling_rate=16000)[0])
    seq = qaudio.tokenize(PROMPTS["people"], qaudio.tokens_per_frame(inputs), kind)
    assert torch.equal(enc["input_ids"][0], seq.ids)
    assert torch.equal(enc["feature_attention_mask"], inputs["feature_attention_mask"])
    with torch.inference_mode():
        ref = torch.stack(qaudio.model(**enc, output_hidden_states=True).hidden_states)[:, 0]
    got = qaudio.extract([waves[1]], {"p": PROMPTS["people"]}, "all", pooling="mean", reuse=False,
                         sampling_rate=16000)["p"].values[0]
    np.testing.assert_allclose(got, ref.mean(1).numpy(), atol=1e-5)


@pytest.mark.parametrize("component, pooling", [("language", p) for p in ("mean", "stimulus", "prompt", "last",
                                                                          "generated")]
                         + [("attention", "last"), ("audio", "mean"), ("connector", "mean")])
def test_reuse_equals_naive(qaudio, waves, component, pooling):
    kw = dict(pooling=pooling, component=component, sampling_rate=16000, generation=GenerationConfig(max_new_tokens=3))
    naive = qaudio.extract(waves, PROMPTS, "all", reuse=False, **kw)
    reuse = qaudio.extract(waves, PROMPTS, "all", reuse=True, **kw)
    assert naive["caption"].meta["n_stimulus_tokens"] == [25, 37]  # 1 s and 1.5 s of audio
    for name in PROMPTS:
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5


def test_audio_component_is_the_encoder_over_real_frames(qaudio, waves):
    fs = qaudio.extract(waves, {"x": "Describe."}, "all", component="audio", sampling_rate=16000)["x"]
    assert fs.values.shape == (2, 3, 32) and fs.layers == [0, 1, 2]
    assert np.abs(fs.values[0] - fs.values[1]).max() > 1e-4
    inputs, _ = qaudio.process_stimulus(qaudio.prepare_stimuli([waves[0]], sampling_rate=16000)[0])
    n_real = (int(inputs["feature_attention_mask"].sum()) - 1) // 2 + 1  # after the stride-2 conv
    with torch.inference_mode():
        _, states = qaudio.encode_image(inputs, vision_states=True)
    assert states[-1].shape[0] == n_real == 50
    np.testing.assert_allclose(fs.values[0, -1], states[-1].mean(0).numpy(), atol=1e-5)


def test_audio_rejections(qaudio, waves, images):
    with pytest.raises(ValueError, match=r"sampling_rate=8000 but the model expects 16000"):
        qaudio.extract(waves, PROMPTS, "all", sampling_rate=8000)
    with pytest.raises(ValueError, match=r"stimuli\[0\] has 48000 samples; .* at most 32000"):
        qaudio.extract([np.zeros(48000, np.float32)], PROMPTS, "all", sampling_rate=16000)
    with pytest.raises(ValueError, match=r"stimuli\[0\] has shape \(56, 56, 3\).*mono"):
        qaudio.extract(images, PROMPTS, "all", sampling_rate=16000)
    with pytest.raises(ValueError, match=r"component='vision'.*'audio'"):
        qaudio.extract(waves, PROMPTS, "all", component="vision", sampling_rate=16000)


def test_image_adapters_reject_sampling_rate(extractors, images):
    with pytest.raises(ValueError, match=r"sampling_rate is for audio stimuli"):
        extractors["llava"].extract(images, PROMPTS, "all", sampling_rate=16000)
