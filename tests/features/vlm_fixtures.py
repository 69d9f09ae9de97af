"""Tiny seeded multimodal checkpoints and shared constants for the feature tests.

Deliberately not a ``conftest.py``: the project's tests import helpers with
``from conftest import ...``, and a second conftest module would shadow the
root one. Test modules import the fixtures they use from here; the
checkpoints are built once per process (cached), written to a temporary
folder (safetensors weights, offline-trained tokenizer, processor configs)
and re-loaded through the real ``from_pretrained(..., local_files_only=True,
use_safetensors=True)`` path of the registry.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from brainalign.features.registry import load_extractor
from brainalign.features.tiny import models as tiny_models

ARCHS = ["qwen2_5_vl", "qwen2_vl", "llava", "internvl"]

PROMPTS = {
    "caption": "What is the caption of the image?",
    "describe": "Describe this image in detail.",
    "people": "Are there any people in this image? If yes, describe them.",
}

_BUILDERS = {
    "qwen2_5_vl": lambda d: tiny_models.build_tiny_qwen2_5_vl(d, seed=0),
    "qwen2_vl": lambda d: tiny_models.build_tiny_qwen2_5_vl(d, variant="qwen2_vl", seed=0),
    "llava": lambda d: tiny_models.build_tiny_llava(d, seed=0),
    "internvl": lambda d: tiny_models.build_tiny_internvl(d, seed=0),
}


@functools.lru_cache(maxsize=None)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="brainalign-tiny-models-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return root


@functools.lru_cache(maxsize=None)
def tiny_model_dir(arch: str) -> Path:
    """Folder of the tiny ``arch`` checkpoint (built on first use in this process)."""
    return _BUILDERS[arch](_root() / arch)


@functools.lru_cache(maxsize=None)
def tiny_extractor(arch: str):
    import torch

    torch.set_num_threads(1)
    return load_extractor(tiny_model_dir(arch), device="cpu")


@pytest.fixture(scope="session")
def tiny_qwen_dir():
    return tiny_model_dir("qwen2_5_vl")


@pytest.fixture(scope="session")
def tiny_llava_dir():
    return tiny_model_dir("llava")


@pytest.fixture(scope="session")
def model_dirs():
    return {arch: tiny_model_dir(arch) for arch in ARCHS}


@pytest.fixture(scope="session")
def extractors():
    return {arch: tiny_extractor(arch) for arch in ARCHS}


@pytest.fixture(params=ARCHS)
def arch(request):
    return request.param


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return [
        rng.integers(0, 256, (56, 56, 3), dtype=np.uint8),
        rng.integers(0, 256, (56, 56, 3), dtype=np.uint8),
    ]
