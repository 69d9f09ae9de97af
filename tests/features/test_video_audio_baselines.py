"""Unimodal video (VideoMAE, ViViT) and audio (Wav2Vec2, AST) baselines through the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.hf_multimodal import Video
from brainalign.features.registry import load_extractor
from brainalign.features.tiny.models import build_tiny_ast, build_tiny_videomae, build_tiny_vivit, build_tiny_wav2vec2

from vlm_fixtures import PROMPTS


@pytest.fixture(scope="module", params=["videomae", "vivit"])
def video_encoder(request, tmp_path_factory):
    build = {"videomae": build_tiny_videomae, "vivit": build_tiny_vivit}[request.param]
    return load_extractor(build(tmp_path_factory.mktemp(request.param)), device="cpu")


@pytest.fixture(scope="module", params=["wav2vec2", "ast"])
def audio_encoder(request, tmp_path_factory):
    build = {"wav2vec2": build_tiny_wav2vec2, "ast": build_tiny_ast}[request.param]
    return load_extractor(build(tmp_path_factory.mktemp(request.param)), device="cpu")


@pytest.fixture
def clips():
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (4, 56, 56, 3), dtype=np.uint8) for _ in range(2)]


@pytest.fixture
def waves():
    rng = np.random.default_rng(6)
    return [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 12000)]


def test_video_features_match_the_encoder(video_encoder, clips):
    ex = video_encoder
    fs = ex.extract([clips[0], Video(clips[1])], PROMPTS, "all")
    assert fs["caption"].values.shape == (2, 3, 32)
    np.testing.assert_array_equal(fs["caption"].values, fs["people"].values)
    pix = ex.image_processor([list(clips[1])], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        ref = ex.model(pixel_values=pix, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(fs["caption"].values[1], torch.stack(ref)[:, 0].mean(1).numpy(), atol=1e-5)
    assert np.abs(fs["caption"].values[0] - fs["caption"].values[1]).max() > 1e-3


def test_video_frame_count_checked(video_encoder, clips):
    with pytest.raises(ValueError, match=r"stimuli\[0\] has 3 frames; .* takes exactly 4.*np.linspace"):
        video_encoder.extract([clips[0][:3]], None, "all")


def test_audio_features_match_the_encoder(audio_encoder, waves):
    ex = audio_encoder
    fs = ex.extract(waves, None, "all", sampling_rate=16000)["none"]
    assert fs.values.shape == (2, 3, 32) and fs.meta["sampling_rate"] == 16000
    inputs = ex.feature_extractor(waves[1], sampling_rate=16000, return_tensors="pt")
    inputs.pop("attention_mask", None)
    with torch.inference_mode():
        ref = ex.model(**inputs, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(fs.values[1], torch.stack(ref)[:, 0].mean(1).numpy(), atol=1e-5)
    assert np.abs(fs.values[0] - fs.values[1]).max() > 1e-4


def test_audio_input_checked(audio_encoder, waves):
    ex = audio_encoder
    with pytest.raises(ValueError, match=r"sampling_rate=44100 but the model expects 16000 Hz.*resample_poly"):
        ex.extract(waves, None, "all", sampling_rate=44100)
    with pytest.raises(ValueError, match=r"sampling_rate is required"):
        ex.extract(waves, None, "all")
    with pytest.raises(ValueError, match=r"stimuli\[0\] has dtype int16.*32768"):
        ex.extract([(waves[0] * 1000).astype(np.int16)], None, "all", sampling_rate=16000)
    with pytest.raises(ValueError, match=r"stimuli\[0\] has shape \(2, 8000\).*mono"):
        ex.extract([np.stack([waves[0], waves[0]])], None, "all", sampling_rate=16000)
    with pytest.raises(ValueError, match=r"single 1-D array"):
        ex.extract(waves[0], None, "all", sampling_rate=16000)
