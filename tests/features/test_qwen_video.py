"""Qwen-VL video input: layout as the library's video patchify, M-RoPE time, reuse == naive."""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from brainalign.features.hf_multimodal import Video
from brainalign.features.pooling import GenerationConfig

from vlm_fixtures import PROMPTS, extractors  # noqa: F401 - pytest fixtures


@pytest.fixture
def clip():
    return np.random.default_rng(3).integers(0, 256, (3, 56, 84, 3), dtype=np.uint8)


def _library_video_patchify():
    """``Qwen2VLVideoProcessor.patchify`` from the installed transformers source (its module needs torchvision)."""
    root = Path(importlib.util.find_spec("transformers").submodule_search_locations[0])
    tree = ast.parse((root / "models/qwen2_vl/video_processing_qwen2_vl.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Qwen2VLVideoProcessor")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "patchify")
    namespace = {"torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "patchify", "exec"), namespace)
    return namespace["patchify"]


def test_video_patches_match_library_layout(extractors, clip):
    ex = extractors["qwen2_5_vl"]
    ip = ex.image_processor
    mean = torch.tensor(ip.image_mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(ip.image_std).view(1, 1, 3, 1, 1)
    frames = torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float() / 255.0  # (1, T, C, H, W), no resize needed
    ref, grid_t, grid_h, grid_w = _library_video_patchify()(
        None, (frames - mean) / std, patch_size=14, merge_size=2, temporal_patch_size=2
    )
    got = ex.process_video(Video(clip, fps=2.0))
    assert got["video_grid_thw"].tolist() == [[grid_t, grid_h, grid_w]] == [[2, 4, 6]]  # 3 frames padded to 4
    np.testing.assert_allclose(got["pixel_values_videos"].numpy(), ref[0].numpy(), atol=1e-5)
    # a still clip of 2 identical frames is exactly the image input
    still = ex.process_video(Video(np.stack([clip[0], clip[0]])))
    assert torch.equal(still["pixel_values_videos"], ex.process_image(clip[0])["pixel_values"])


@pytest.mark.parametrize("arch_", ["qwen2_5_vl", "qwen2_vl"])
@pytest.mark.parametrize("pooling", ["mean", "stimulus", "prompt", "last", "generated"])
def test_video_reuse_equals_naive(extractors, clip, arch_, pooling):
    ex = extractors[arch_]
    stimuli = [Video(clip, fps=2.0), Video(clip[:2], fps=1.0)]
    gen = GenerationConfig(max_new_tokens=3)
    naive = ex.extract(stimuli, PROMPTS, "all", pooling=pooling, reuse=False, generation=gen)
    reuse = ex.extract(stimuli, PROMPTS, "all", pooling=pooling, reuse=True, generation=gen)
    assert naive["caption"].meta["n_stimulus_tokens"] == [12, 6] and naive["caption"].meta["as_video"] == [True, True]
    for name in PROMPTS:
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5


def test_video_time_positions(extractors, clip):
    """Qwen2.5-VL spaces video frames in M-RoPE time by fps; Qwen2-VL does not; both differ from images."""
    for arch_, fps_matters in [("qwen2_5_vl", True), ("qwen2_vl", False)]:
        ex = extractors[arch_]
        slow = ex.extract([Video(clip, fps=1.0)], PROMPTS, "all", pooling="last")["caption"].values
        fast = ex.extract([Video(clip, fps=4.0)], PROMPTS, "all", pooling="last")["caption"].values
        frames = ex.extract([clip], PROMPTS, "all", pooling="last")["caption"].values
        assert (np.abs(slow - fast).max() > 1e-6) == fps_matters
        assert np.abs(slow - frames).max() > 1e-4


def test_video_rejections(extractors, clip):
    with pytest.raises(ValueError, match=r"llava adapter takes no video input"):
        extractors["llava"].extract([Video(clip)], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"stimuli\[0\]\.fps=0"):
        extractors["qwen2_5_vl"].extract([Video(clip, fps=0)], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"frames have different shapes"):
        extractors["qwen2_5_vl"].extract([Video([clip[0], clip[0][:, :56]])], PROMPTS, "all")
