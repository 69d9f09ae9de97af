"""Tiny seeded causal LMs and planted studies for the steering tests (built once per process).

Not a conftest.py (the root conftest must not be shadowed); tests import from here.
"""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


@functools.lru_cache(maxsize=None)
def root() -> Path:
    r = Path(tempfile.mkdtemp(prefix="brainalign-steering-"))
    atexit.register(shutil.rmtree, r, ignore_errors=True)
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return r


@functools.lru_cache(maxsize=None)
def tiny_lm_dir(arch: str) -> Path:
    from brainalign.steering.models import build_tiny_causal_lm

    return build_tiny_causal_lm(root() / arch, arch, hidden_size=32, num_layers=4, seed=0)


def tiny_lm(arch: str):
    from brainalign.steering.models import load_causal_lm

    return load_causal_lm(tiny_lm_dir(arch))


@functools.lru_cache(maxsize=None)
def planted(seed: int, n_items: int = 40, n_subjects: int = 1):
    from brainalign.steering.simulate import planted_study

    return planted_study(root() / f"planted{seed}-{n_items}", seed=seed, n_items=n_items, n_subjects=n_subjects)
