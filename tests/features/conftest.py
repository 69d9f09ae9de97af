"""Tiny seeded vision-language checkpoints, built once per session.

Each is written to a tmp folder (safetensors weights, offline-trained
tokenizer, image-processor config) and re-loaded through the real
``from_pretrained(..., local_files_only=True, use_safetensors=True)`` path of
the registry.
"""
from __future__ import annotations

import numpy as np
import pytest

from brainalign.features.registry import load_extractor
from brainalign.features.tiny_models import build_tiny_internvl, build_tiny_llava, build_tiny_qwen2_5_vl

from vlm_test_data import ARCHS

@pytest.fixture(scope="session", autouse=True)
def _quiet_transformers():
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    yield


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny_qwen2_5_vl"), seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_vl_dir(tmp_path_factory):
    return build_tiny_qwen2_5_vl(tmp_path_factory.mktemp("tiny_qwen2_vl"), variant="qwen2_vl", seed=0)


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"), seed=0)


@pytest.fixture(scope="session")
def tiny_internvl_dir(tmp_path_factory):
    return build_tiny_internvl(tmp_path_factory.mktemp("tiny_internvl"), seed=0)


@pytest.fixture(scope="session")
def model_dirs(tiny_qwen_dir, tiny_qwen2_vl_dir, tiny_llava_dir, tiny_internvl_dir):
    return {
        "qwen2_5_vl": tiny_qwen_dir,
        "qwen2_vl": tiny_qwen2_vl_dir,
        "llava": tiny_llava_dir,
        "internvl": tiny_internvl_dir,
    }


@pytest.fixture(scope="session")
def extractors(model_dirs):
    import torch

    torch.set_num_threads(1)
    return {arch: load_extractor(path, device="cpu") for arch, path in model_dirs.items()}


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
