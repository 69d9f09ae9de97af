"""Qwen2-Audio as a prompt-conditioned feature extractor (audio LLM; the unimodal audio encoders are in
:mod:`brainalign.features.hf_audio`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .hf_multimodal import VisionLanguageExtractor

__all__ = ["QwenAudioExtractor"]


@dataclass
class _Audio:
    wave: np.ndarray


class QwenAudioExtractor(VisionLanguageExtractor):
    """Qwen2-Audio (``Qwen2AudioForConditionalGeneration``: Whisper-style encoder, projector, Qwen2).

    Stimuli are mono float waveforms at the feature extractor's sampling rate
    (``extract(..., sampling_rate=16000)``). As ``Qwen2AudioProcessor``: the
    features are padded to the extractor's window, ``<|AUDIO|>`` becomes one
    token per encoder output frame of the real (unpadded) audio, positions
    are 1-D. The "audio" component reads the encoder's hidden states (mean over
    the frames of the real audio).
    """

    model_type = "qwen2_audio"
    image_token = "<|AUDIO|>"
    encoder_component = "audio"

    @staticmethod
    def read_stimulus_token_id(config) -> int:
        return int(config.audio_token_id)

    @property
    def n_vision_layers(self) -> int:
        return int(self.model.config.audio_config.encoder_layers)

    @property
    def sampling_rate(self) -> int:
        return int(self.image_processor.sampling_rate)

    def prepare_stimuli(self, stimuli, **options):
        from .hf_audio import check_waveforms

        waves = check_waveforms(stimuli, options.get("sampling_rate"), self.sampling_rate)
        window = int(self.image_processor.n_samples)
        for i, w in enumerate(waves):
            if w.size > window:
                raise ValueError(
                    f"stimuli[{i}] has {w.size} samples; {self.model_id} reads at most {window} "
                    f"({window / self.sampling_rate:g} s) per audio. Cut it into shorter clips."
                )
        return [_Audio(w) for w in waves]

    @staticmethod
    def process_kind(stimulus) -> str:
        return "audio"

    @staticmethod
    def stimulus_frames(stimulus) -> int:
        return 1

    def render(self, prompt, n_frames=1, kind="audio"):
        content = [{"type": "audio", "audio_url": "stimulus"} for _ in range(n_frames)]
        messages = [{"role": "user", "content": content + [{"type": "text", "text": prompt}]}]
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False, add_generation_prompt=True
        )

    def process_stimulus(self, stimulus):
        out = self.image_processor(
            stimulus.wave, sampling_rate=self.sampling_rate, return_attention_mask=True, padding="max_length",
            return_tensors="pt",
        )
        return {
            "input_features": out["input_features"].to(self.device, self.model.dtype),
            "feature_attention_mask": out["attention_mask"].to(self.device),
        }, "audio"

    def tokens_per_frame(self, image_inputs):
        n = int(image_inputs["feature_attention_mask"].sum())
        return [(((n - 1) // 2 + 1) - 2) // 2 + 1]

    def encode_image(self, image_inputs, vision_states=False):
        """Audio tower + projector exactly as the model's forward runs them (padding masked)."""
        from transformers.masking_utils import create_bidirectional_mask

        tower = self.model.model.audio_tower
        feats = image_inputs["input_features"]
        # transformers has no public form of this length formula; the model's own forward calls it too
        conv_len, out_len = tower._get_feat_extract_output_lengths(image_inputs["feature_attention_mask"].sum(-1))
        max_len = (feats.shape[-1] - 2) // 2 + 1
        valid = (torch.arange(max_len, device=feats.device)[None] < conv_len[:, None]).long()
        mask = create_bidirectional_mask(
            config=tower.config,
            inputs_embeds=torch.zeros(1, max_len, 1, dtype=self.model.dtype, device=feats.device),
            attention_mask=valid,
        )
        out = tower(feats, attention_mask=mask, output_hidden_states=vision_states)
        embeds = self.model.model.multi_modal_projector(out.last_hidden_state)[0, : int(out_len[0])]
        states = None
        if vision_states:
            n = int(conv_len[0])
            states = tuple(h[0, :n] for h in out.hidden_states)
        return embeds, states

    def position_ids(self, input_ids, image_inputs):
        return torch.arange(input_ids.shape[-1], device=self.device)[None]

    def model_inputs(self, input_ids, image_inputs):
        return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), **image_inputs}
