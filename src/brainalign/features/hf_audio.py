"""Unimodal audio-encoder baselines (Wav2Vec2, AST...) via ``AutoModel``.

Stimuli are mono waveforms (1-D float arrays) at the feature extractor's
sampling rate. As with image encoders, the features do not depend on a prompt;
every prompt name gets the same values.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .base import FeatureSet, resolve_layers, stimulus_id_list
from .hf_loading import input_device
from brainalign.stimuli.inputs import check_prompts

__all__ = ["AudioEncoderExtractor", "check_waveforms"]


def check_waveforms(waveforms: Sequence[Any], sampling_rate: int | None, expected_rate: int,
                    name: str = "stimuli") -> list[np.ndarray]:
    """Validate mono float waveforms at ``expected_rate`` Hz; return float32 arrays."""
    if sampling_rate is None:
        raise ValueError(f"sampling_rate is required for audio stimuli (this model expects {expected_rate} Hz).")
    if int(sampling_rate) != int(expected_rate):
        raise ValueError(
            f"sampling_rate={sampling_rate} but the model expects {expected_rate} Hz; resample first, e.g. "
            f"scipy.signal.resample_poly(wave, {expected_rate}, {sampling_rate})."
        )
    if isinstance(waveforms, np.ndarray) and waveforms.ndim == 1:
        raise ValueError(f"{name} is a single 1-D array; pass a list of waveforms, e.g. [wave].")
    if len(waveforms) == 0:
        raise ValueError(f"{name} is empty: pass at least one waveform.")
    out = []
    for i, w in enumerate(waveforms):
        w = np.asarray(w)
        if w.ndim != 1:
            raise ValueError(f"{name}[{i}] has shape {w.shape}; pass mono 1-D waveforms (average channels first).")
        if not np.issubdtype(w.dtype, np.floating):
            raise ValueError(f"{name}[{i}] has dtype {w.dtype}; pass float waveforms in [-1, 1] "
                             "(int16 PCM: wave / 32768).")
        if w.size < int(0.1 * expected_rate):
            raise ValueError(f"{name}[{i}] has {w.size} samples; at least 0.1 s ({int(0.1 * expected_rate)}) needed.")
        if not np.isfinite(w).all():
            raise ValueError(f"{name}[{i}] contains NaN or inf.")
        out.append(w.astype(np.float32))
    return out


class AudioEncoderExtractor:
    """Layer-wise features of an audio encoder, mean over time frames.

    Parameters
    ----------
    model : PreTrainedModel (``AutoModel``: Wav2Vec2Model, ASTModel...)
    feature_extractor : its feature extractor
    model_id : str
    meta : dict, optional
    """

    def __init__(self, model, feature_extractor, *, model_id: str = "", meta: dict[str, Any] | None = None,
                 **_ignored: Any):
        self.model = model.eval()
        self.feature_extractor = feature_extractor
        self.model_id = model_id or getattr(model.config, "_name_or_path", "")
        self.model_type = str(model.config.model_type)
        self.n_layers = int(model.config.num_hidden_layers)
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.meta = dict(meta or {})

    @property
    def device(self) -> torch.device:
        return input_device(self.model)

    def extract(self, stimuli: Sequence[Any], prompts=None, layers: Sequence[int | float] | str = "all", *,
                sampling_rate: int | None = None, stimulus_ids: Sequence[str] | None = None,
                **_ignored: Any) -> dict[str, FeatureSet]:
        """Features (n_stimuli, n_layers, dim) per prompt name (identical across prompts).

        Parameters
        ----------
        stimuli : list of 1-D float waveforms
        prompts : names to key the output by (texts unused); None -> {"none"}
        layers : "all", ints or relative depths; 0 = the encoder's input embeddings
        sampling_rate : int
            Of ``stimuli``; must equal the model's.
        """
        waves = check_waveforms(stimuli, sampling_rate, self.sampling_rate)
        names = ["none"] if prompts is None else list(check_prompts(prompts))
        try:
            layer_idx = resolve_layers(layers, self.n_layers)
        except ValueError as err:
            raise ValueError(f"layers={layers!r} for {self.model_id}: {err}") from None
        ids = stimulus_id_list(stimulus_ids, len(waves))
        rows = []
        with torch.inference_mode():
            for w in waves:  # one at a time: no padding enters the time average
                inputs = self.feature_extractor(w, sampling_rate=self.sampling_rate, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in inputs.items() if k != "attention_mask"}
                out = self.model(**inputs, output_hidden_states=True)
                rows.append(torch.stack([out.hidden_states[i][0].double().mean(0) for i in layer_idx]).float())
        values = torch.stack(rows).cpu().numpy().astype(np.float32)
        meta = {**self.meta, "model_type": self.model_type, "component": "audio", "pooling": "mean",
                "pooling_description": "mean over time frames", "sampling_rate": self.sampling_rate,
                "prompt_text": None}
        return {n: FeatureSet(values=values, stimulus_ids=list(ids), layers=layer_idx, model=self.model_id,
                              prompt=n, meta=dict(meta)) for n in names}
