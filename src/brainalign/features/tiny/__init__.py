"""Tiny, seeded, config-built models saved like real checkpoints (tests, benchmarks, ``--tiny`` runs).

- :mod:`.tokenizer`: the offline BPE tokenizers (:func:`train_bpe`, :func:`save_tokenizer`);
- :mod:`.models`: image, video and audio LLMs and encoders (``build_tiny_<model_type>``);
- :mod:`.extra`: video-LLaVA and IDEFICS v1 (imports their adapters, so it is not loaded here).
"""
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all
from .tokenizer import save_tokenizer, train_bpe

__all__ = [*_models_all, "train_bpe", "save_tokenizer"]
