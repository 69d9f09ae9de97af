"""Video LLaVA adapters: LLaVA-NeXT-Video and Video-LLaVA (native transformers classes).

Both take images (as their LLaVA parents) and clips given as
:class:`~brainalign.stimuli.inputs.Video`: the template's ``<video>``
becomes one token per video embedding, as in the library's processors:

- :class:`LlavaNextVideoExtractor` (``LlavaNextVideoForConditionalGeneration``):
  each frame's CLIP patches (CLS dropped) are average-pooled 2x2 and
  projected, ``(side/patch/stride)**2`` tokens per frame; images use
  LLaVA-NeXT's any-resolution tiling.
- :class:`VideoLlavaExtractor` (``VideoLlavaForConditionalGeneration``): a
  separate video tower; every frame gives its patches + CLS (the CLS is
  kept for videos, dropped for images).

Video frames are resized, centre-cropped and normalised by a plain
CLIP-style frame processor built from the checkpoint's
``video_preprocessor_config.json`` (the library's video processors need
torchvision, which CPU installs often lack; they apply the same
resize / crop / rescale / normalise steps). The number of video tokens is
read off the model's own video features, so it always matches what the
model scatters.
"""
from __future__ import annotations

from typing import Any

import torch

from .hf_vlm_families import LlavaExtractor, LlavaNextExtractor
from brainalign.stimuli.inputs import Video

__all__ = ["LlavaNextVideoExtractor", "VideoLlavaExtractor", "frame_processor"]


def frame_processor(config: dict[str, Any] | None, image_processor=None):
    """CLIP-style processor of video frames (resize shortest edge, centre crop, rescale, normalise).

    Parameters
    ----------
    config : dict, optional
        Contents of a checkpoint's ``video_preprocessor_config.json``.
    image_processor : BaseImageProcessor, optional
        Used for the settings when ``config`` is None (its crop size and
        normalisation).
    """
    from transformers import CLIPImageProcessorPil

    if config is None:
        if image_processor is None:
            raise ValueError("frame_processor needs a video_preprocessor_config or an image_processor.")
        crop = dict(getattr(image_processor, "crop_size", None) or {})
        side = int(crop.get("height") or dict(image_processor.size).get("shortest_edge"))
        config = {"size": {"shortest_edge": side}, "crop_size": {"height": side, "width": side},
                  "image_mean": list(image_processor.image_mean), "image_std": list(image_processor.image_std)}
    keys = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
            "do_normalize", "image_mean", "image_std", "do_convert_rgb")
    return CLIPImageProcessorPil(**{k: config[k] for k in keys if k in config and config[k] is not None})


class _VideoMixin:
    """Shared video plumbing: ``<video>`` token, frame processing, token count read off the features."""

    video_token = "<video>"

    @classmethod
    def checkpoint_options(cls, path: str, hf: dict[str, Any], image_processor) -> tuple[dict, dict]:
        """The frame processor of the checkpoint's ``video_preprocessor_config.json`` (else the image settings)."""
        import json

        from .hf_loading import checkpoint_file

        file = checkpoint_file(path, "video_preprocessor_config.json", hf)
        video_cfg = json.loads(file.read_text()) if file else None
        meta = {"frame_processor": "video_preprocessor_config.json" if video_cfg else "image processor settings"}
        return meta, {"frame_processor": frame_processor(video_cfg, image_processor)}

    def _init_frames(self, frame_proc) -> None:
        self.frame_processor = frame_proc or frame_processor(None, self.image_processor)

    @property
    def video_token_id(self) -> int:
        return int(self.model.config.video_token_id)

    def process_video(self, video: Video) -> dict[str, torch.Tensor]:
        out = self.frame_processor(images=list(video.frames), return_tensors="pt")
        pix = out["pixel_values"][None].to(self.device, self.model.dtype)  # (1, T, C, H, W)
        inputs = {"pixel_values_videos": pix}
        with torch.inference_mode():
            inputs["_embeds"] = [self._video_features(inputs, vision_states=False)[0]]
        return inputs

    def _video_features(self, inputs, vision_states: bool):
        """(video tokens, lm_dim) embeddings and, optionally, the video tower's states (patches of all frames)."""
        cfg = self.model.config
        kw = {"vision_feature_select_strategy": cfg.vision_feature_select_strategy} if self._takes_strategy else {}
        out = self.model.model.get_video_features(
            pixel_values_videos=inputs["pixel_values_videos"], vision_feature_layer=cfg.vision_feature_layer,
            output_hidden_states=True, **kw,
        )
        embeds = out.pooler_output.reshape(-1, out.pooler_output.shape[-1])
        states = tuple(h.reshape(-1, h.shape[-1]) for h in out.hidden_states) if vision_states else None
        return embeds, states

    def tokens_per_frame(self, image_inputs):
        return [int(e.shape[0]) for e in image_inputs["_embeds"]]


class LlavaNextVideoExtractor(_VideoMixin, LlavaNextExtractor):
    """LLaVA-NeXT-Video (``LlavaNextVideoForConditionalGeneration``): anyres images and pooled video frames.

    Parameters are those of
    :class:`~brainalign.features.hf_multimodal.VisionLanguageExtractor`, plus
    ``frame_processor`` (see :func:`frame_processor`; default: CLIP-style
    with the image processor's crop size and normalisation).
    """

    model_type = "llava_next_video"
    _takes_strategy = True

    def __init__(self, model, tokenizer, image_processor, *, frame_processor=None, **kwargs):
        super().__init__(model, tokenizer, image_processor, **kwargs)
        self._init_frames(frame_processor)

    def encode_image(self, image_inputs, vision_states=False):
        if "pixel_values_videos" not in image_inputs:
            return super().encode_image(image_inputs, vision_states)
        if vision_states:
            return self._video_features(image_inputs, vision_states=True)
        return torch.cat(image_inputs["_embeds"], dim=0), None


class VideoLlavaExtractor(_VideoMixin, LlavaExtractor):
    """Video-LLaVA (``VideoLlavaForConditionalGeneration``): image tower for images, video tower for clips.

    Parameters as :class:`LlavaNextVideoExtractor`. The "vision" component
    reads the image tower for images and the video tower for videos.
    """

    model_type = "video_llava"
    _takes_strategy = False

    def __init__(self, model, tokenizer, image_processor, *, frame_processor=None, **kwargs):
        super().__init__(model, tokenizer, image_processor, **kwargs)
        self._init_frames(frame_processor)

    def process_frames(self, frames):
        try:
            out = self.image_processor(images=list(frames), return_tensors="pt", return_legacy_image_output=False)
        except TypeError:  # processors without the legacy switch
            out = self.image_processor(images=list(frames), return_tensors="pt")
        pix = out["pixel_values"] if "pixel_values" in out else out["pixel_values_images"]
        return {"pixel_values": pix.to(self.device, self.model.dtype)}

    def tokens_per_frame(self, image_inputs):
        if "_embeds" in image_inputs:
            return _VideoMixin.tokens_per_frame(self, image_inputs)
        return LlavaExtractor.tokens_per_frame(self, image_inputs)

    def encode_image(self, image_inputs, vision_states=False):
        if "pixel_values_videos" not in image_inputs:
            return super().encode_image(image_inputs, vision_states)
        if vision_states:
            return self._video_features(image_inputs, vision_states=True)
        return image_inputs["_embeds"][0], None

