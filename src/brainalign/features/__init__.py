"""Prompt-conditioned, layer-wise features of text and multimodal models.

``extract``, ``registry`` and ``prompts`` import without torch; models are
loaded on first extraction.
"""
from brainalign.features.base import Extractor, FeatureSet, resolve_layers
from brainalign.features.baselines import BASELINE_KINDS, baseline_features
from brainalign.features.extract import extract_features
from brainalign.features.hf_text import TextExtractor
from brainalign.features.registry import (
    fingerprint,
    load_extractor,
    register_adapter,
    supported_model_types,
)
from brainalign.features.sharded import extract_sharded
from brainalign.features.store import FeatureStore

__all__ = [
    "BASELINE_KINDS",
    "Extractor",
    "FeatureSet",
    "FeatureStore",
    "TextExtractor",
    "baseline_features",
    "extract_features",
    "extract_sharded",
    "fingerprint",
    "load_extractor",
    "register_adapter",
    "resolve_layers",
    "supported_model_types",
]
