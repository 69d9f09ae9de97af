"""Unimodal image and video encoder baselines (ViT, CLIP vision, VideoMAE, ViViT) via ``AutoModel``.

No prompt: the features do not depend on an instruction, so every prompt name
passed to :meth:`VisionEncoderExtractor.extract` gets the same values (or a
single ``"none"`` entry when no prompt is given). That keeps the ``Extractor``
contract so baselines line up with instruction-conditioned models.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .base import FeatureSet, resolve_layers, stimulus_id_list
from .hf_loading import input_device
from brainalign.stimuli.inputs import Video, check_images, check_prompts, check_stimuli

__all__ = ["VisionEncoderExtractor", "VideoEncoderExtractor", "VISION_POOLINGS"]

VISION_POOLINGS = {
    "mean": "mean over all tokens (CLS included), as the seeds' ViT/CLIP baselines",
    "cls": "the first (CLS) token",
}


class VisionEncoderExtractor:
    """Layer-wise features of an image encoder.

    Parameters
    ----------
    model : PreTrainedModel
        ``AutoModel`` output; for dual encoders (CLIP) the vision tower
        (``model.vision_model``) is used.
    image_processor : image processor of the checkpoint
    model_id : str
    pooling : {"mean", "cls"}
    batch_size : int
        Images per forward.
    meta : dict, optional
    """

    def __init__(self, model, image_processor, *, model_id: str = "", pooling: str = "mean",
                 batch_size: int = 16, meta: dict[str, Any] | None = None):
        self.model = model.eval()
        self.encoder = getattr(model, "vision_model", model)
        self.image_processor = image_processor
        self.model_id = model_id or getattr(model.config, "_name_or_path", "")
        self.model_type = str(model.config.model_type)
        cfg = getattr(model.config, "vision_config", model.config)
        self.n_layers = int(cfg.num_hidden_layers)
        self.pooling = self._check_pooling(pooling)
        self.batch_size = int(batch_size)
        self.meta = dict(meta or {})

    @staticmethod
    def _check_pooling(pooling: str) -> str:
        if pooling not in VISION_POOLINGS:
            raise ValueError(f"pooling={pooling!r} is not supported by image encoders; use one of {sorted(VISION_POOLINGS)}.")
        return pooling

    @property
    def device(self) -> torch.device:
        return input_device(self.model)

    def _check(self, stimuli):
        return check_images(stimuli, "stimuli")

    def _pixels(self, batch) -> torch.Tensor:
        return self.image_processor(images=batch, return_tensors="pt")["pixel_values"]

    def extract(
        self,
        stimuli: Sequence[Any],
        prompts: dict[str, str] | Sequence[str] | None = None,
        layers: Sequence[int | float] | str = "all",
        *,
        pooling: str | None = None,
        stimulus_ids: Sequence[str] | None = None,
        **_ignored: Any,
    ) -> dict[str, FeatureSet]:
        """Features (n_stimuli, n_layers, dim) per prompt name (identical across prompts).

        Parameters
        ----------
        stimuli : uint8 arrays (H, W, 3) or PIL images
        prompts : names to key the output by; texts are not used. None -> {"none"}.
        layers : "all", ints or relative depths; 0 = patch embeddings.
        pooling : {"mean", "cls"}
        stimulus_ids : list of str, optional
        """
        images = self._check(stimuli)
        names = ["none"] if prompts is None else list(check_prompts(prompts))
        pooling = self._check_pooling(pooling or self.pooling)
        try:
            layer_idx = resolve_layers(layers, self.n_layers)
        except ValueError as err:
            raise ValueError(f"layers={layers!r} for {self.model_id}: {err}") from None
        ids = stimulus_id_list(stimulus_ids, len(images))
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pix = self._pixels(images[start : start + self.batch_size])
                out = self.encoder(pixel_values=pix.to(self.device, self.model.dtype), output_hidden_states=True)
                states = torch.stack([out.hidden_states[i] for i in layer_idx], dim=1)  # (B, L, T, d)
                vec = states[:, :, 0] if pooling == "cls" else states.double().mean(2)
                chunks.append(vec.float().cpu().numpy())
        values = np.concatenate(chunks).astype(np.float32)
        meta = {**self.meta, "model_type": self.model_type, "component": "vision", "pooling": pooling,
                "pooling_description": VISION_POOLINGS[pooling], "prompt_text": None}
        return {
            name: FeatureSet(values=values, stimulus_ids=list(ids), layers=layer_idx, model=self.model_id,
                             prompt=name, meta=dict(meta))
            for name in names
        }


class VideoEncoderExtractor(VisionEncoderExtractor):
    """Layer-wise features of a video encoder (VideoMAE, ViViT); one clip per stimulus.

    Each stimulus is a clip of exactly ``config.num_frames`` frames (uint8
    (n_frames, H, W, 3), a list of frames, or a :class:`Video`); sample frames
    beforehand, e.g. ``clip[np.linspace(0, len(clip) - 1, n).round().astype(int)]``
    (the seed code sampled 32 frames per TR clip with an unseeded random start).
    """

    def __init__(self, model, image_processor, **kwargs):
        super().__init__(model, image_processor, **kwargs)
        self.num_frames = int(model.config.num_frames)

    def _check(self, stimuli):
        clips = []
        for i, stim in enumerate(check_stimuli(stimuli, "stimuli")):
            frames = stim.frames if isinstance(stim, Video) else stim
            if len(frames) != self.num_frames:
                raise ValueError(
                    f"stimuli[{i}] has {len(frames)} frames; {self.model_id} takes exactly {self.num_frames}. "
                    "Sample them first, e.g. clip[np.linspace(0, len(clip) - 1, n).round().astype(int)]."
                )
            clips.append(list(frames))
        return clips

    def _pixels(self, batch) -> torch.Tensor:
        return self.image_processor(batch, return_tensors="pt")["pixel_values"]
