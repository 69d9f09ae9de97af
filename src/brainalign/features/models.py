"""The features stage: pooled features per model × prompt × layer, for every kind of model a config names.

* ``kind: text`` — a text encoder/LM reads each filled prompt (:class:`~brainalign.features.hf_text.TextExtractor`);
* ``kind: multimodal`` — a registry adapter reads the stimulus objects (images, clips, sounds) with each prompt
  (:func:`brainalign.features.extract.extract_features`, through the feature cache);
* ``kind: baseline`` — per-frame pixels, motion energy, random or RL-agent features
  (:mod:`brainalign.features.frame_baselines`).

Every function returns ``{prompt name: ndarray (n_stimuli, n_layers, dim)}`` and the model's metadata.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from brainalign._utils.errors import ConfigError
from brainalign.config import ModelSpec, MovieClipStimuli, Stimuli, resolve_path
from brainalign.features.hf_text import TextExtractor, fill_prompts
from brainalign.features.store import FeatureStore
from brainalign.study.data import Progress, StudyData, no_progress

__all__ = ["make_extractor", "model_features", "MultimodalReader", "AUDIO_MODEL_TYPES", "IMAGE_MODEL_TYPES"]

#: Model types whose stimulus is a sound: they read a movie clip's soundtrack (``modality: auto``).
AUDIO_MODEL_TYPES = ("qwen2_audio", "wav2vec2", "audio-spectrogram-transformer", "hubert", "wavlm", "whisper")
#: Image encoders: they read the middle frame of a movie clip (``modality: auto``), e.g. ViT-H as a unimodal baseline.
IMAGE_MODEL_TYPES = ("vit", "clip", "clip_vision_model", "dinov2", "siglip", "siglip_vision_model")


def make_extractor(spec) -> TextExtractor:
    """The feature extractor a :class:`~brainalign.config.ModelSpec` names (pretrained or seeded random init)."""
    return TextExtractor(
        spec.source, pooling=spec.pooling, revision=spec.revision,
        trust_remote_code=spec.trust_remote_code, batch_size=spec.batch_size,
        weights=spec.weights, seed=spec.init_seed, dtype=spec.dtype, device=spec.device,
    )


def _text_model_features(spec: ModelSpec, prompts: dict[str, str], data: StudyData, store: FeatureStore, tick):
    from brainalign.features.base import resolve_layers

    ex = make_extractor(spec)
    layers = resolve_layers(spec.layers, ex.n_layers)
    meta = dict(layers=layers, n_layers=ex.n_layers, fingerprint=ex.fingerprint(), model_id=ex.model_id, texts={},
                n_tokens={})
    feats = {}
    for pname, texts in fill_prompts(spec.prompts_from(prompts), data.names).items():
        feats[pname] = ex.embed_cached(texts, layers, store)
        meta["texts"][pname] = texts
        meta["n_tokens"][pname] = ex.count_tokens(texts)
        tick()
    return feats, meta


class MultimodalReader:
    """A multimodal model over one study's stimuli, read with any prompt text (the features stage and the controls).

    Gives the two calls the controls use on a :class:`~brainalign.features.hf_text.TextExtractor` —
    ``embed_cached(texts, layers, store)`` and ``count_tokens(texts)`` — where ``texts`` is one prompt per stimulus
    (the same text for every stimulus: the stimulus itself is the image, clip or sound), plus :meth:`in_context`.

    Parameters
    ----------
    spec : ModelSpec (kind ``multimodal``)
    stimuli : Stimuli
        The config's ``stimuli`` section (movie clips are sampled to the encoder's frame count).
    data : StudyData with ``load_stimuli``
    base_dir : Path, optional
        Folder of the config (relative model folders).
    """

    def __init__(self, spec: ModelSpec, stimuli: Stimuli, data: StudyData, base_dir: Path | None = None):
        from brainalign.features.registry import fingerprint, load_extractor

        if data.load_stimuli is None:
            raise ConfigError(f"models[{spec.name}] is multimodal but stimuli.format '{stimuli.format}' gives no "
                             "images, clips or sounds; use a text model or an image/video/audio stimulus format.")
        local = resolve_path(spec.source, base_dir)
        self.source = str(local) if local.exists() else spec.source
        self.spec, self.data = spec, data
        self.ex = load_extractor(self.source, trust_remote_code=spec.trust_remote_code, revision=spec.revision,
                                 dtype=spec.dtype, device=spec.device, batch_size=spec.batch_size)
        self.n_layers = int(self.ex.n_layers)
        self.model_type = getattr(self.ex, "model_type", None)
        self.options = {} if spec.component == "language" else dict(component=spec.component)
        modality = spec.modality if spec.modality != "auto" else (
            "audio" if self.model_type in AUDIO_MODEL_TYPES else "image" if self.model_type in IMAGE_MODEL_TYPES
            else "video")
        if isinstance(stimuli, MovieClipStimuli):
            # video encoders (VideoMAE, ViViT) take a fixed number of frames: sample that many per clip
            self.stimuli = data.load_stimuli(modality, getattr(self.ex, "num_frames", None))
            if modality == "audio":
                self.options["sampling_rate"] = data.extract_options["sampling_rate"]
        else:
            self.stimuli = data.load_stimuli()
        self.fingerprint = fingerprint(self.ex, pooling=spec.pooling, component=spec.component)

    def features(self, texts: dict[str, str], layers, store: FeatureStore) -> dict[str, np.ndarray]:
        """``{name: StackedEntries (n_stimuli, n_layers, dim)}`` for prompt texts (``{stimulus}`` already filled):
        the cache entries, read part by part when indexed (``F[:, j, :]``), never all at once."""
        from brainalign.features.extract import extract_features

        # lazy: {prompt: StackedEntries}, each space reads its layer from the cache files when it is fitted
        return extract_features(self.ex, self.stimuli, texts, layers, self.spec.pooling, store=store, lazy=True,
                                **self.options)

    def embed_cached(self, texts: list[str], layers, store: FeatureStore, pool_from=None) -> np.ndarray:
        if pool_from is not None:
            raise ValueError("in-context prompts of a multimodal model go through MultimodalReader.in_context.")
        if len(set(texts)) != 1:
            raise ConfigError(f"models[{self.spec.name}] reads one prompt text for every stimulus; got {len(set(texts))} "
                             "different texts (a prompt's '{stimulus}' names the stimulus format, not the stimulus).")
        return self.features({"p": texts[0]}, layers, store)["p"]

    def count_tokens(self, texts: list[str]) -> list[int]:
        tok = getattr(self.ex, "tokenizer", None)
        if tok is None:  # unimodal encoders read no text
            return [0] * len(texts)
        return [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def in_context(self, icl, prompts: dict[str, str], seed: int, layer: int,
                   store: FeatureStore | None = None) -> dict[str, np.ndarray]:
        """In-context features (k worked examples with or without their stimuli) at one layer, per prompt:
        ``{name: ndarray (n_stimuli, dim)}``.

        With ``store``, each prompt's array is one cache entry keyed by the model's fingerprint, the prompt text,
        ``icl`` (k, examples, answers), the seed, the stimulus names and contents and the layer, so that the next
        subject of a study (same clips) reads it instead of running k + 1 stimuli per query again.
        """
        import hashlib
        import json

        from brainalign.features.in_context_extract import in_context_from_spec
        from brainalign.stimuli.inputs import stimulus_digest

        keys: dict[str, str] = {}
        out: dict[str, np.ndarray] = {}
        if store is not None:
            rate = self.options.get("sampling_rate")
            contents = hashlib.sha256("".join(stimulus_digest(x, rate) for x in self.stimuli).encode()).hexdigest()
            blob = json.dumps(dict(icl=icl.model_dump(mode="json"), seed=int(seed), stimuli=contents,
                                   names=[str(n) for n in self.data.stimuli]), sort_keys=True)
            keys = {n: store.key(self.fingerprint, f"in_context\x00{t}\x00{blob}", [layer]) for n, t in prompts.items()}
            for n, k in keys.items():
                arr = store.get(k)
                if arr is not None:
                    out[n] = arr
            store.hits += len(out)
            store.misses += len(prompts) - len(out)
        missing = {n: t for n, t in prompts.items() if n not in out}
        if missing:
            sets = in_context_from_spec(self.ex, icl, self.stimuli, self.data.stimuli, missing, seed=seed,
                                        layers=[layer], pooling=self.spec.pooling, component=self.spec.component,
                                        sampling_rate=self.options.get("sampling_rate"))
            for name, fs in sets.items():
                out[name] = np.asarray(fs.values, dtype=np.float32)[:, 0, :]
                if store is not None:
                    store.put(keys[name], out[name], model=self.spec.name, prompt=name, in_context=icl.k)
        return {n: out[n] for n in prompts}


def _multimodal_model_features(spec: ModelSpec, prompts: dict[str, str], stimuli: Stimuli, data: StudyData,
                               store: FeatureStore, tick, base_dir=None):
    """Features of a registry adapter: the stimulus objects (images...) with each prompt, through the cache.

    The prompt's ``{stimulus}`` becomes the stimulus format's name (e.g. "image"); prompt-free models
    (``prompts: none``) get the placeholder text "none", which unimodal encoders ignore.
    """
    from brainalign.features.base import resolve_layers

    reader = MultimodalReader(spec, stimuli, data, base_dir)
    layers = resolve_layers(spec.layers, reader.n_layers)
    name = data.names[0] if data.names else "image"
    texts = {p: t.format(stimulus=name) for p, t in spec.prompts_from(prompts).items()}
    if spec.prompts == "none":
        texts = {"none": "none"}
    feats = reader.features(texts, layers, store)
    for _ in texts:
        tick()
    meta = dict(layers=layers, n_layers=reader.n_layers, model_id=spec.source, model_type=reader.model_type,
                fingerprint=reader.fingerprint, texts={p: [t] for p, t in texts.items()},
                n_tokens={p: reader.count_tokens([t]) for p, t in texts.items()})
    return feats, meta


def model_features(
    models: Sequence[ModelSpec], prompts: Mapping[str, str], stimuli: Stimuli, seed: int,
    data: StudyData | list[str], store: FeatureStore, progress: Progress = no_progress, base_dir: Path | None = None,
) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """Pooled features per model and prompt, from the cache when present.

    Parameters
    ----------
    models : the config's ``models`` (ModelSpec list)
    prompts : the config's ``prompts`` (name → template); each model reads the ones
        :meth:`ModelSpec.prompts_from` gives it
    stimuli : the config's ``stimuli`` section
    seed : the experiment's seed (seeded baselines)
    data : StudyData, or a plain list of stimulus names (text models only)
    store : the feature cache

    Returns
    -------
    features : dict model name → dict prompt name → ndarray (n_stimuli, n_layers, dim)
    meta : dict model name → {layers, n_layers, fingerprint, texts, n_tokens}
    """
    if not isinstance(data, StudyData):
        data = StudyData(None, None, list(data), None)
    feats, meta = {}, {}
    tick = progress("features", sum(len(m.prompts_from(prompts)) for m in models))
    for spec in models:
        if spec.kind == "text":
            feats[spec.name], meta[spec.name] = _text_model_features(spec, prompts, data, store, tick)
        elif spec.kind == "baseline":  # per-frame pixels / motion energy / random / RL agent
            from brainalign.features.frame_baselines import frame_baseline_features

            feats[spec.name], meta[spec.name] = frame_baseline_features(spec, stimuli, seed, data, tick, base_dir)
        else:
            feats[spec.name], meta[spec.name] = _multimodal_model_features(spec, prompts, stimuli, data, store, tick, base_dir)
    return feats, meta
