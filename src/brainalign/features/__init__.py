"""Prompt-conditioned, layer-wise features of text and multimodal models.

``extract``, ``registry`` and ``prompts`` import without torch; models are
loaded on first extraction.
"""
from brainalign.features.base import Extractor, FeatureSet, resolve_layers
from brainalign.features.extract import extract_features
from brainalign.features.hf_text import TextExtractor
from brainalign.features.registry import (
    fingerprint,
    load_extractor,
    register_adapter,
    supported_model_types,
)
from brainalign.features.store import FeatureStore

__all__ = [
    "Extractor",
    "FeatureSet",
    "FeatureStore",
    "TextExtractor",
    "extract_features",
    "fingerprint",
    "load_extractor",
    "register_adapter",
    "resolve_layers",
    "supported_model_types",
]
