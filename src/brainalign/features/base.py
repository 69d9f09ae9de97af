"""The feature-extraction contract shared by every model adapter.

An extractor turns stimuli × prompts into per-layer feature vectors:
``Extractor.extract(stimuli, prompts, layers) -> dict[prompt_name, FeatureSet]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["FeatureSet", "Extractor", "resolve_layers", "stimulus_id_list"]


@dataclass
class FeatureSet:
    """Features of one model under one prompt.

    Attributes
    ----------
    values : ndarray of shape (n_stimuli, n_layers, dim), float32
    stimulus_ids : list of str, length n_stimuli
    layers : list of int
        Absolute layer index of each slice of ``values`` (0 = embeddings).
    model : str
    prompt : str
        Prompt name (key in the prompt set).
    meta : dict
        Anything needed to reproduce the features (pooling, revision, texts...).
    """

    values: np.ndarray
    stimulus_ids: list[str]
    layers: list[int]
    model: str
    prompt: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.ndim != 3:
            raise ValueError(f"FeatureSet.values must be (n_stimuli, n_layers, dim), got {self.values.shape}.")
        if self.values.shape[0] != len(self.stimulus_ids):
            raise ValueError(
                f"FeatureSet has {self.values.shape[0]} rows but {len(self.stimulus_ids)} stimulus ids."
            )
        if self.values.shape[1] != len(self.layers):
            raise ValueError(f"FeatureSet has {self.values.shape[1]} layer slices but {len(self.layers)} layer ids.")

    def layer(self, layer: int) -> np.ndarray:
        """Features of one absolute layer index, shape (n_stimuli, dim)."""
        return self.values[:, self.layers.index(layer)]


@runtime_checkable
class Extractor(Protocol):
    """What every model adapter provides."""

    model_id: str
    n_layers: int

    def extract(
        self, stimuli: Sequence[Any], prompts: dict[str, str], layers: Sequence[int | float] | str
    ) -> dict[str, FeatureSet]:
        """Features for every prompt; keys are prompt names."""
        ...


def stimulus_id_list(stimulus_ids: Sequence[Any] | None, n_stimuli: int) -> list[str]:
    """The ids of ``n_stimuli`` stimuli as strings: ``stimulus_ids``, or "0", "1", ... when None.

    Raises
    ------
    ValueError
        If ``stimulus_ids`` does not have ``n_stimuli`` entries.
    """
    ids = [str(i) for i in range(n_stimuli)] if stimulus_ids is None else [str(s) for s in stimulus_ids]
    if len(ids) != n_stimuli:
        raise ValueError(f"stimulus_ids has {len(ids)} entries for {n_stimuli} stimuli.")
    return ids


def resolve_layers(layers: Sequence[int | float] | str, n_layers: int) -> list[int]:
    """Turn a layer request into sorted absolute indices in ``[0, n_layers]``.

    ``n_layers`` counts transformer blocks; index 0 is the embedding output,
    so there are ``n_layers + 1`` hidden states. Accepted requests: ``"all"``,
    integers (negative counts from the end), floats in [0, 1] (relative depth,
    rounded to the nearest block).

    Raises
    ------
    ValueError
        If an index is out of range, with the valid range in the message.
    """
    n_states = n_layers + 1
    if isinstance(layers, str):
        if layers != "all":
            raise ValueError(f"layers={layers!r}: use 'all', a list of ints, or floats in [0, 1].")
        return list(range(n_states))
    out = []
    for layer in layers:
        if isinstance(layer, float):
            if not 0.0 <= layer <= 1.0:
                raise ValueError(f"relative layer depth {layer} is outside [0, 1].")
            idx = int(round(layer * n_layers))
        else:
            idx = int(layer)
            if idx < 0:
                idx += n_states
            if not 0 <= idx < n_states:
                raise ValueError(
                    f"layer {layer} is out of range for a model with {n_layers} blocks "
                    f"(valid: 0..{n_layers} or -{n_states}..-1)."
                )
        out.append(idx)
    return sorted(set(out))
