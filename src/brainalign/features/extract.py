"""One-call feature extraction for scripts and notebooks, optionally through the feature cache."""
from __future__ import annotations

import json
from collections.abc import Sequence as SequenceABC
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Extractor
from .store import StackedEntries

__all__ = ["extract_features", "cached_features"]

_LOAD_KEYS = ("trust_remote_code", "revision", "device", "dtype")


def extract_features(
    model: str | Path | Extractor,
    images: Sequence[Any],
    prompts: dict[str, str] | Sequence[str] | str,
    layers: Sequence[int | float] | str | None = None,
    pooling: str = "mean",
    reuse: bool = True,
    *,
    store: Any = None,
    chunk_size: int = 8,
    lazy: bool = False,
    **options: Any,
) -> np.ndarray | dict:
    """Prompt-conditioned layer-wise features as one array.

    Parameters
    ----------
    model : str, Path or Extractor
        Local folder / cached hub id (loaded offline through
        :func:`brainalign.features.registry.load_extractor`), or an extractor
        already built.
    images : sequence of stimuli
        uint8 arrays (H, W, 3) or PIL images; frame sequences, ``Video`` clips
        or waveforms for the adapters that take them.
    prompts : dict name -> text, list of texts, or one text
    layers : "all" (default when None), ints (negative from the end) or
        floats in [0, 1] (relative depth)
    pooling : str
        "mean", "stimulus", "prompt", "last" or "generated".
    reuse : bool
        Share the stimulus encoder and the prompt prefix across prompts.
    store : FeatureStore, optional
        Content-addressed cache (:class:`brainalign.features.store.FeatureStore`).
        Entries are keyed by the checkpoint's weights, the settings, the
        prompt text, the stimulus content and the layer request. Only stimuli
        with a missing entry are computed, ``chunk_size`` at a time, each
        chunk written before the next starts (a crash loses at most one
        chunk); when every entry exists and ``model`` is a path, no model is
        loaded at all.
    chunk_size : int
        Stimuli per extraction call when filling the store.
    **options
        Passed to ``extract`` (``component``, ``generation``,
        ``sampling_rate``...) or, when ``model`` is a path,
        ``trust_remote_code``/``revision``/``device``/``dtype`` to the loader.

    lazy : bool
        With ``store``: return ``{prompt: StackedEntries (n_images, n_layers, dim)}``, the cache files read part
        by part when indexed, instead of one array (a study's features then never sit in memory at once).

    Returns
    -------
    ndarray of shape (n_prompts, n_images, n_layers, dim), float32, prompts in
    the order given (a dict of lazy arrays with ``lazy=True``).
    """
    from brainalign.stimuli.inputs import check_prompts

    prompts = check_prompts(prompts)
    load_opts = {k: options.pop(k) for k in list(options) if k in _LOAD_KEYS}
    if not isinstance(model, (str, Path, Extractor)):
        raise ValueError(
            f"model must be a model id, a local folder or an Extractor; got {type(model).__name__}."
        )
    if isinstance(model, Extractor) and load_opts:
        raise ValueError(f"{sorted(load_opts)} only apply when model is a path; the extractor is already loaded.")
    layer_request = "all" if layers is None else layers
    if lazy and store is None:
        raise ValueError("lazy=True reads features from the cache: pass store= (a FeatureStore).")
    if store is not None:
        entries = cached_features(model, images, prompts, layer_request, pooling, reuse, store, chunk_size,
                                  load_opts, options)
        if lazy:
            return entries
        return np.stack([np.asarray(entries[name]) for name in prompts]).astype(np.float32, copy=False)
    if isinstance(model, (str, Path)):
        from .registry import load_extractor

        model = load_extractor(model, **load_opts)
    feats = model.extract(images, prompts, layer_request, pooling=pooling, reuse=reuse, **options)
    return np.stack([feats[name].values for name in prompts]).astype(np.float32, copy=False)


def _settings(pooling: str, options: dict[str, Any], extractor: Any = None) -> dict[str, Any]:
    """Everything besides weights, prompt, stimulus and layers that changes the features."""
    settings: dict[str, Any] = {"pooling": pooling, "component": options.get("component", "language")}
    if pooling == "generated":
        gen = options.get("generation") or getattr(extractor, "generation", None)
        settings["generation"] = gen.as_dict() if gen is not None else "default"
    return settings


def cache_keys(model, stimuli, prompts, layers, pooling, load_opts, options):
    """FeatureStore keys of every (prompt name, stimulus index), computable without loading a path model.

    Returns
    -------
    fingerprint : str
    layer_spec : str
    digests : list of str, one sha256 per stimulus
    keys : dict (prompt name, stimulus index) -> key
    """
    from brainalign.stimuli.inputs import stimulus_digest
    from .registry import fingerprint, fingerprint_source
    from .store import FeatureStore

    if isinstance(model, (str, Path)):
        fp = fingerprint_source(str(model), dtype=load_opts.get("dtype", "float32"),
                                revision=load_opts.get("revision"), **_settings(pooling, options))
    else:
        fp = fingerprint(model, **_settings(pooling, options, model))
    layer_spec = json.dumps(layers if isinstance(layers, str) else [float(x) if isinstance(x, float) else int(x)
                                                                    for x in layers])
    digests = [stimulus_digest(s, options.get("sampling_rate")) for s in stimuli]
    keys = {
        (name, i): FeatureStore.key(fp, f"{text}\x00stimulus={digests[i]}\x00layers={layer_spec}", [])
        for name, text in prompts.items()
        for i in range(len(stimuli))
    }
    return fp, layer_spec, digests, keys


def cached_features(model, stimuli, prompts, layers, pooling, reuse, store, chunk_size, load_opts, options) -> dict:
    """Every prompt's features of every stimulus through the feature cache, computing only the missing entries.

    Returns
    -------
    dict prompt name -> :class:`~brainalign.features.store.StackedEntries` of shape (n_stimuli, n_layers, dim),
    float32: the verified cache files, read part by part when indexed (a study's features are never all in
    memory; :func:`extract_features` stacks them).
    """
    from .registry import load_extractor

    if isinstance(stimuli, np.ndarray) and stimuli.ndim == 4:
        stimuli = list(stimuli)
    if not isinstance(stimuli, SequenceABC):  # a lazy Sequence (e.g. per-TR MovieClips) stays lazy: each stimulus
        stimuli = list(stimuli)              # is decoded for its digest, then again only if its entry is missing
    if len(stimuli) == 0:
        raise ValueError("images is empty: pass at least one stimulus.")
    extractor = None if isinstance(model, (str, Path)) else model
    fp, layer_spec, digests, keys = cache_keys(model, stimuli, prompts, layers, pooling, load_opts, options)
    found = {k: store.entry_path(key) for k, key in keys.items()}  # verified files, not loaded
    missing = sorted({i for (_, i), arr in found.items() if arr is None})
    store.hits += sum(a is not None for a in found.values())
    store.misses += sum(a is None for a in found.values())
    if missing:
        if extractor is None:
            extractor = load_extractor(model, **load_opts)
        for start in range(0, len(missing), max(1, int(chunk_size))):
            chunk = missing[start : start + max(1, int(chunk_size))]
            feats = extractor.extract([stimuli[i] for i in chunk], prompts, layers, pooling=pooling, reuse=reuse,
                                      stimulus_ids=[digests[i][:16] for i in chunk], **options)
            for name, text in prompts.items():
                fs = feats[name]
                for row, i in enumerate(chunk):
                    if found[(name, i)] is not None:
                        continue
                    meta = {"model": extractor.model_id, "fingerprint": fp, "prompt": name, "text": text,
                            "stimulus_sha256": digests[i], "layers": fs.layers, "layer_request": layer_spec,
                            "pooling": pooling}
                    if "generated_text" in fs.meta:
                        meta["generated_text"] = fs.meta["generated_text"][row]
                    found[(name, i)] = store.put(keys[(name, i)], fs.values[row], **meta)  # read back like the others
            del feats
    return {name: StackedEntries.of_files([found[(name, i)] for i in range(len(stimuli))], np.float32)
            for name in prompts}
