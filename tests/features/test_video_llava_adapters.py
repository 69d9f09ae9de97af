"""LLaVA-NeXT-Video and Video-LLaVA: token counts as the library's processors, features as the plain forward."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from brainalign.features.hf_multimodal import Video
from brainalign.features.pooling import GenerationConfig
from brainalign.features.registry import load_extractor, supported_model_types
from brainalign.features.tiny.extra import build_tiny_llava_next_video, build_tiny_video_llava

from vlm_fixtures import PROMPTS

_CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
_CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


@pytest.fixture(scope="module")
def video_models(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_video_llavas")
    return {
        "llava_next_video": load_extractor(build_tiny_llava_next_video(root / "lnv"), device="cpu"),
        "video_llava": load_extractor(build_tiny_video_llava(root / "vl"), device="cpu"),
    }


@pytest.fixture(params=["llava_next_video", "video_llava"])
def name(request):
    return request.param


@pytest.fixture
def clip():
    return np.random.default_rng(5).integers(0, 256, (3, 56, 56, 3), dtype=np.uint8)


@pytest.fixture
def image():
    return np.random.default_rng(6).integers(0, 256, (56, 84, 3), dtype=np.uint8)


def _library_video_token_count(name, pixel_values_videos):
    """Placeholder count from the library processor's own ``replace_video_token``."""
    if name == "llava_next_video":
        from transformers import LlavaNextVideoProcessor as Proc
    else:
        from transformers import VideoLlavaProcessor as Proc
    ns = SimpleNamespace(patch_size=14, num_additional_image_tokens=1, video_token="<video>")
    return Proc.replace_video_token(ns, {"pixel_values_videos": pixel_values_videos}, 0).count("<video>")


def _library_image_token_count(name, ex, image, pixel_values):
    if name == "video_llava":
        from transformers import VideoLlavaProcessor

        ns = SimpleNamespace(patch_size=14, num_additional_image_tokens=1, vision_feature_select_strategy="default",
                             image_token="<image>")
        return VideoLlavaProcessor.replace_image_token(ns, {"pixel_values": pixel_values}, 0).count("<image>")
    from transformers import LlavaNextVideoProcessor

    ns = SimpleNamespace(patch_size=14, num_additional_image_tokens=1, vision_feature_select_strategy="default",
                         image_token="<image>", image_processor=ex.image_processor)
    ns._get_unpadded_features = lambda *a: LlavaNextVideoProcessor._get_unpadded_features(ns, *a)
    ns._get_number_of_features = lambda *a: LlavaNextVideoProcessor._get_number_of_features(ns, *a)
    inputs = {"image_sizes": [list(image.shape[:2])], "pixel_values": [pixel_values[0]]}
    return LlavaNextVideoProcessor.replace_image_token(ns, inputs, 0).count("<image>")


def _plain_forward(ex, text, **pixels):
    ids = torch.tensor([ex.tokenizer(text)["input_ids"]])
    with torch.inference_mode():
        out = ex.model(input_ids=ids, **pixels, output_hidden_states=True)
    return torch.stack(out.hidden_states)[:, 0].numpy(), ids[0]


def test_registry_maps_config_types(video_models):
    assert {"llava_next_video", "video_llava", "idefics"} <= set(supported_model_types())
    assert type(video_models["llava_next_video"]).__name__ == "LlavaNextVideoExtractor"
    assert type(video_models["video_llava"]).__name__ == "VideoLlavaExtractor"
    assert all(ex.meta["frame_processor"] == "video_preprocessor_config.json" for ex in video_models.values())


def test_video_input_matches_library_and_plain_forward(video_models, name, clip):
    ex = video_models[name]
    inputs, kind = ex.process_stimulus(Video(clip, fps=2.0))
    pix = inputs["pixel_values_videos"]
    assert kind == "video" and pix.shape == (1, 3, 3, 56, 56)
    # frames already at the crop size: rescale + CLIP normalisation only
    expected = (clip.transpose(0, 3, 1, 2) / 255.0 - _CLIP_MEAN[:, None, None]) / _CLIP_STD[:, None, None]
    np.testing.assert_allclose(pix[0].numpy(), expected, atol=1e-5)
    n_tok = ex.tokens_per_frame(inputs)
    assert n_tok == [_library_video_token_count(name, pix)] == [3 * (4 if name == "llava_next_video" else 17)]
    text = "USER: " + "<video>" * n_tok[0] + f"\n{PROMPTS['people']} ASSISTANT:"
    ref, ids = _plain_forward(ex, text, pixel_values_videos=pix)
    seq = ex.tokenize(PROMPTS["people"], n_tok, "video")
    assert torch.equal(seq.ids, ids)
    for pooling, want in [("last", ref[:, -1]), ("mean", ref.mean(1)),
                          ("stimulus", ref[:, (ids == ex.video_token_id).numpy()].mean(1))]:
        got = ex.extract([Video(clip)], {"p": PROMPTS["people"]}, "all", pooling=pooling, reuse=False)["p"]
        assert got.values.shape == (1, 3, 64) and got.layers == [0, 1, 2]
        np.testing.assert_allclose(got.values[0], want, atol=1e-5)


def test_image_input_matches_library_and_plain_forward(video_models, name, image):
    ex = video_models[name]
    inputs, kind = ex.process_stimulus([image])
    pixel_key = "pixel_values"
    n_tok = ex.tokens_per_frame(inputs)
    assert kind == "image" and n_tok == [_library_image_token_count(name, ex, image, inputs[pixel_key])]
    text = "USER: " + "<image>" * n_tok[0] + f"\n{PROMPTS['caption']} ASSISTANT:"
    pixels = {k: v for k, v in inputs.items() if not k.startswith("_")}
    ref, ids = _plain_forward(ex, text, **pixels)
    got = ex.extract([image], {"c": PROMPTS["caption"]}, "all", pooling="last", reuse=False)["c"]
    np.testing.assert_allclose(got.values[0], ref[:, -1], atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "stimulus", "prompt", "last", "generated"])
def test_reuse_equals_naive(video_models, name, clip, image, pooling):
    ex = video_models[name]
    stimuli = [image, Video(clip, fps=2.0), Video(clip[:2], fps=1.0)]
    gen = GenerationConfig(max_new_tokens=3)
    naive = ex.extract(stimuli, PROMPTS, [0, -1], pooling=pooling, reuse=False, generation=gen)
    reuse = ex.extract(stimuli, PROMPTS, [0, -1], pooling=pooling, reuse=True, generation=gen)
    for key in PROMPTS:
        assert naive[key].values.shape == (3, 2, 64)
        assert np.abs(naive[key].values - reuse[key].values).max() <= 1e-5
        if pooling == "generated":
            assert naive[key].meta["generated_text"] == reuse[key].meta["generated_text"]
    assert naive["caption"].meta["as_video"] == [False, True, True]
    # the clip's content matters and prompts matter
    assert np.abs(naive["caption"].values[1] - naive["caption"].values[2]).max() > 1e-4


def test_vision_component_reads_the_right_tower(video_models, name, clip, image):
    ex = video_models[name]
    out = ex.extract([image, Video(clip)], PROMPTS, "all", component="vision")["caption"]
    assert out.values.shape == (2, 3, 32)
    if name == "video_llava":  # separate towers: a still video of the image differs from the image
        still = np.stack([image[:, :56]] * 2)
        a = ex.extract([image[:, :56], Video(still)], PROMPTS, [-1], component="vision")["caption"].values
        assert np.abs(a[0] - a[1]).max() > 1e-4


def test_bad_video_rejected(video_models, name, clip):
    ex = video_models[name]
    with pytest.raises(ValueError, match=r"frames have different shapes"):
        ex.extract([Video([clip[0], clip[1][:40]])], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"dtype float64; images must be uint8"):
        ex.extract([Video(clip / 255.0)], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"layer 5 is out of range"):
        ex.extract([Video(clip)], PROMPTS, [5])
