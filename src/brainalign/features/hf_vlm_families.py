"""Architecture adapters of :class:`~brainalign.features.hf_multimodal.VisionLanguageExtractor` (vision LLMs).

Each says how to preprocess a stimulus, how many placeholder tokens it takes,
how to run the vision encoder and which position ids its language model
expects: Qwen2-VL / Qwen2.5-VL, LLaVA-1.5, InternVL (``-hf``), Idefics2 and
LLaVA-NeXT. Build them with :func:`brainalign.features.registry.load_extractor`.
"""
from __future__ import annotations

import numpy as np
import torch

from .hf_multimodal import VisionLanguageExtractor
from brainalign.stimuli.inputs import Video

__all__ = ["QwenVLExtractor", "LlavaExtractor", "InternVLExtractor", "Idefics2Extractor", "LlavaNextExtractor"]


class QwenVLExtractor(VisionLanguageExtractor):
    """Qwen2-VL / Qwen2.5-VL (and UI-TARS, same architecture).

    Placeholder expansion follows the processor: ``<|image_pad|>`` becomes
    ``image_grid_thw.prod() // merge_size**2`` tokens. 3-D M-RoPE positions
    are computed by the model's own ``get_rope_index`` from
    ``mm_token_type_ids`` (without them transformers silently falls back to
    1-D positions), and ``model.model.rope_deltas`` is reset around calls.
    """

    model_type = "qwen2_5_vl"
    image_token = "<|image_pad|>"
    video_token = "<|video_pad|>"
    # the vision tower attends within each image's grid (cu_seqlens): images of any size concatenate, no padding
    batch_keys = ("pixel_values", "image_grid_thw")

    @property
    def video_token_id(self) -> int:
        return int(self.model.config.video_token_id)

    def process_video(self, video: Video):
        """Video patches built from the image processor's per-frame output.

        Each frame is resized/normalised by the image processor (which
        repeats it ``temporal_patch_size`` times); consecutive frames are then
        paired along time exactly as ``Qwen2VLVideoProcessor.patchify`` lays
        them out (the clip is padded with its last frame to a multiple of the
        temporal patch). Resizing uses the image processor's rule, which can
        differ from the video processor's pixel budget: pass frames whose
        sides are multiples of 28 to avoid resizing.
        """
        frames = list(video.frames)
        tp = int(self.model.config.vision_config.temporal_patch_size)
        if pad := -len(frames) % tp:
            frames = frames + [frames[-1]] * pad
        out = self.image_processor(images=frames, return_tensors="pt")
        grid = out["image_grid_thw"]
        n = int(grid[0, 1] * grid[0, 2])
        ps = int(self.model.config.vision_config.patch_size)
        pix = out["pixel_values"].reshape(len(frames), n, -1, tp, ps, ps)[:, :, :, 0]  # (T, N, C, ps, ps)
        pix = pix.reshape(len(frames) // tp, tp, n, -1, ps, ps).permute(0, 2, 3, 1, 4, 5)  # (T/tp, N, C, tp, ps, ps)
        pix = pix.reshape((len(frames) // tp) * n, -1)
        inputs = {
            "pixel_values_videos": pix.to(self.device, self.model.dtype),
            "video_grid_thw": torch.tensor([[len(frames) // tp, int(grid[0, 1]), int(grid[0, 2])]], device=self.device),
        }
        if self.model_type == "qwen2_5_vl":
            inputs["second_per_grid_ts"] = torch.tensor([tp / video.fps], device=self.device)
        return inputs

    @property
    def n_vision_layers(self) -> int:
        return int(self.model.config.vision_config.depth)

    def process_frames(self, frames):
        out = self.image_processor(images=list(frames), return_tensors="pt")
        return {
            "pixel_values": out["pixel_values"].to(self.device, self.model.dtype),
            "image_grid_thw": out["image_grid_thw"].to(self.device),
        }

    @staticmethod
    def _grid(image_inputs):
        return image_inputs["video_grid_thw"] if "video_grid_thw" in image_inputs else image_inputs["image_grid_thw"]

    def tokens_per_frame(self, image_inputs):
        merge = int(self.model.config.vision_config.spatial_merge_size)
        return (self._grid(image_inputs).prod(-1) // merge**2).tolist()

    def encode_image(self, image_inputs, vision_states=False):
        key = "pixel_values_videos" if "video_grid_thw" in image_inputs else "pixel_values"
        out = self.model.model.visual(
            image_inputs[key], grid_thw=self._grid(image_inputs), output_hidden_states=vision_states
        )
        return out.pooler_output, (out.hidden_states if vision_states else None)

    def _mm_token_type_ids(self, input_ids):
        return (input_ids == self.image_token_id).int() + 2 * (input_ids == self.video_token_id).int()

    def position_ids(self, input_ids, image_inputs):
        # Positions depend only on the ids, the grids and the clip's timing: cache them across same-size stimuli.
        key = (input_ids.numpy().tobytes() if input_ids.device.type == "cpu" else None,
               tuple((k, tuple(v.flatten().tolist())) for k, v in sorted(image_inputs.items())
                     if k in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")))
        if key[0] is not None and key in self._position_cache:
            return self._position_cache[key]
        input_ids = input_ids.to(self.device)
        pos, _ = self.model.model.get_rope_index(
            input_ids,
            mm_token_type_ids=self._mm_token_type_ids(input_ids),
            image_grid_thw=image_inputs.get("image_grid_thw"),
            video_grid_thw=image_inputs.get("video_grid_thw"),
            second_per_grid_ts=image_inputs.get("second_per_grid_ts"),
        )
        if key[0] is not None:
            if len(self._position_cache) > 4096:
                self._position_cache.clear()
            self._position_cache[key] = pos
        return pos  # (3, 1, seq_len)

    def model_inputs(self, input_ids, image_inputs):
        return {
            "input_ids": input_ids,
            "mm_token_type_ids": self._mm_token_type_ids(input_ids),
            "attention_mask": torch.ones_like(input_ids),
            **image_inputs,
        }

    def reset_state(self):
        self.model.model.rope_deltas = None


class LlavaExtractor(VisionLanguageExtractor):
    """LLaVA-1.5 (``LlavaForConditionalGeneration``: CLIP tower, MLP projector, Llama).

    ``<image>`` expands to the number of patch tokens the projector emits
    (CLS dropped with the "default" feature-select strategy), as in
    ``LlavaProcessor``; positions are 1-D.
    """

    model_type = "llava"
    image_token = "<image>"
    # every image is resized to the tower's size: they stack along the batch dimension, no padding
    batch_keys = ("pixel_values",)

    @property
    def n_vision_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    def process_frames(self, frames):
        out = self.image_processor(images=list(frames), return_tensors="pt")
        return {"pixel_values": out["pixel_values"].to(self.device, self.model.dtype)}

    def tokens_per_frame(self, image_inputs):
        vc = self.model.config.vision_config
        pix = image_inputs["pixel_values"]
        n = (pix.shape[-1] // vc.patch_size) * (pix.shape[-2] // vc.patch_size)
        n += 0 if self.model.config.vision_feature_select_strategy == "default" else 1
        return [n] * int(pix.shape[0])

    def encode_image(self, image_inputs, vision_states=False):
        cfg = self.model.config
        out = self.model.model.get_image_features(
            pixel_values=image_inputs["pixel_values"],
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
            output_hidden_states=True,
        )
        embeds = torch.cat(list(out.pooler_output), dim=0)
        states = tuple(h.reshape(-1, h.shape[-1]) for h in out.hidden_states) if vision_states else None
        return embeds, states

    def position_ids(self, input_ids, image_inputs):
        return torch.arange(input_ids.shape[-1], device=self.device)[None]  # (1, seq_len)


class InternVLExtractor(VisionLanguageExtractor):
    """InternVL ``-hf`` checkpoints (``InternVLForConditionalGeneration``: InternViT, pixel shuffle, MLP, Qwen2/Llama).

    As ``InternVLProcessor``: images are cut into tiles (``crop_to_patches``,
    plus a thumbnail when there is more than one), the template's ``<image>``
    becomes ``<img>`` + ``<IMG_CONTEXT>`` x (tokens per tile x tiles) +
    ``</img>``; positions are 1-D. Vision states are averaged over tiles and
    patches.
    """

    model_type = "internvl"
    image_token = "<IMG_CONTEXT>"
    placeholder = "<image>"
    crop_to_patches: bool = True

    @property
    def n_vision_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    def _tokens_per_tile(self) -> int:
        vc = self.model.config.vision_config
        side = int(np.atleast_1d(vc.image_size)[0]) // int(np.atleast_1d(vc.patch_size)[0])
        return int(round(side * side * self.model.config.downsample_ratio**2))

    def expand_placeholder(self, n_stimulus_tokens):
        return "<img>" + self.image_token * n_stimulus_tokens + "</img>"

    def process_frames(self, frames):
        out = self.image_processor(images=list(frames), crop_to_patches=self.crop_to_patches, return_tensors="pt")
        pix = out["pixel_values"]
        tiles = out.get("num_patches", [pix.shape[0]] if len(frames) == 1 else None)
        if tiles is None:
            raise ValueError(f"{self.model_id}: the image processor did not report tiles per image (num_patches).")
        tiles = torch.as_tensor(tiles).reshape(-1)
        return {"pixel_values": pix.to(self.device, self.model.dtype), "_tiles": tiles}

    def tokens_per_frame(self, image_inputs):
        return [self._tokens_per_tile() * int(t) for t in image_inputs["_tiles"]]

    def model_inputs(self, input_ids, image_inputs):
        return {"input_ids": input_ids, "pixel_values": image_inputs["pixel_values"]}

    def encode_image(self, image_inputs, vision_states=False):
        cfg = self.model.config
        out = self.model.model.get_image_features(
            pixel_values=image_inputs["pixel_values"],
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
            output_hidden_states=vision_states,
        )
        embeds = out.pooler_output.reshape(-1, out.pooler_output.shape[-1])
        states = tuple(h.reshape(-1, h.shape[-1]) for h in out.hidden_states) if vision_states else None
        return embeds, states

    def position_ids(self, input_ids, image_inputs):
        return torch.arange(input_ids.shape[-1], device=self.device)[None]


class Idefics2Extractor(VisionLanguageExtractor):
    """Idefics2 (``Idefics2ForConditionalGeneration``: SigLIP encoder, perceiver resampler, Mistral).

    As ``Idefics2Processor``: ``<image>`` becomes ``<fake_token_around_image>``
    + ``<image>`` x resampler latents (x 5 with image splitting: 4 crops + the
    whole image) + ``<fake_token_around_image>``, adjacent fake tokens merge,
    and a space follows a closing fake token glued to a word. Positions are
    1-D. Vision states are averaged over all (sub-)images and patches.
    """

    model_type = "idefics2"
    image_token = "<image>"
    fake_token = "<fake_token_around_image>"

    @property
    def n_vision_layers(self) -> int:
        return int(self.model.config.vision_config.num_hidden_layers)

    @property
    def language_model(self):
        return self.model.model.text_model

    def _per_image(self) -> int:
        n = int(self.model.config.perceiver_config.resampler_n_latents)
        return n * (5 if getattr(self.image_processor, "do_image_splitting", False) else 1)

    def expand_placeholder(self, n_stimulus_tokens):
        n = int(self.model.config.perceiver_config.resampler_n_latents)
        return (self.fake_token + self.image_token * n + self.fake_token) * (n_stimulus_tokens // n)

    def postprocess_text(self, text):
        import re

        fake = self.fake_token
        text = text.replace(fake + fake, fake)
        return re.sub(rf"{re.escape(fake)}(?=[^\s<])", f"{fake} ", text)

    def process_frames(self, frames):
        out = self.image_processor([list(frames)], return_tensors="pt")
        inputs = {"pixel_values": out["pixel_values"].to(self.device, self.model.dtype), "_n": len(frames)}
        if "pixel_attention_mask" in out:
            inputs["pixel_attention_mask"] = out["pixel_attention_mask"].to(self.device)
        return inputs

    def tokens_per_frame(self, image_inputs):
        return [self._per_image()] * int(image_inputs["_n"])

    def encode_image(self, image_inputs, vision_states=False):
        out = self.model.model.get_image_features(
            pixel_values=image_inputs["pixel_values"],
            pixel_attention_mask=image_inputs.get("pixel_attention_mask"),
            output_hidden_states=vision_states,
        )
        embeds = torch.cat(list(out.pooler_output), dim=0)
        states = tuple(h.reshape(-1, h.shape[-1]) for h in out.hidden_states) if vision_states else None
        return embeds, states

    def position_ids(self, input_ids, image_inputs):
        return torch.arange(input_ids.shape[-1], device=self.device)[None]


class LlavaNextExtractor(LlavaExtractor):
    """LLaVA-NeXT / LLaVA-1.6 (``LlavaNextForConditionalGeneration``, "anyres" tiling).

    The number of ``<image>`` tokens of an image (tiles, unpadding, one
    newline embedding per row) is read off the model's own packed image
    features, so it always matches what the model scatters; the tests check
    it against ``LlavaNextProcessor``. The modality encoder therefore runs
    while preprocessing and its output is kept with the inputs.
    """

    model_type = "llava_next"

    def process_frames(self, frames):
        out = self.image_processor(images=list(frames), return_tensors="pt")
        inputs = {
            "pixel_values": out["pixel_values"].to(self.device, self.model.dtype),
            "image_sizes": out["image_sizes"].to(self.device),
        }
        with torch.inference_mode():
            inputs["_embeds"] = self._image_features(inputs, vision_states=False)[0]
        return inputs

    def _image_features(self, image_inputs, vision_states):
        cfg = self.model.config
        out = self.model.model.get_image_features(
            pixel_values=image_inputs["pixel_values"],
            image_sizes=image_inputs["image_sizes"],
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
            output_hidden_states=True,
        )
        embeds = list(out.pooler_output)
        states = tuple(h.reshape(-1, h.shape[-1]) for h in out.hidden_states) if vision_states else None
        return embeds, states

    def tokens_per_frame(self, image_inputs):
        return [int(e.shape[0]) for e in image_inputs["_embeds"]]

    def encode_image(self, image_inputs, vision_states=False):
        if vision_states:
            embeds, states = self._image_features(image_inputs, vision_states=True)
            return torch.cat(embeds, dim=0), states
        return torch.cat(image_inputs["_embeds"], dim=0), None
