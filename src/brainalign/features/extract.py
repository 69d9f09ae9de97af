"""One-call feature extraction for scripts and notebooks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Extractor

__all__ = ["extract_features"]


def extract_features(
    model: str | Path | Extractor,
    images: Sequence[Any],
    prompts: dict[str, str] | Sequence[str] | str,
    layers: Sequence[int | float] | str | None = None,
    pooling: str = "mean",
    reuse: bool = True,
    **options: Any,
) -> np.ndarray:
    """Prompt-conditioned layer-wise features as one array.

    Parameters
    ----------
    model : str, Path or Extractor
        Local folder / cached hub id (loaded offline through
        :func:`brainalign.features.registry.load_extractor`), or an extractor
        already built.
    images : sequence of uint8 arrays (H, W, 3) or PIL images
    prompts : dict name -> text, list of texts, or one text
    layers : "all" (default when None), ints (negative from the end) or
        floats in [0, 1] (relative depth)
    pooling : str
        "mean", "stimulus", "prompt", "last" or "generated".
    reuse : bool
        Share the image encoder and the prompt prefix across prompts.
    **options
        Passed to ``extract`` (``component``, ``generation``...) or, when
        ``model`` is a path, ``trust_remote_code``/``device``/``dtype`` to the loader.

    Returns
    -------
    ndarray of shape (n_prompts, n_images, n_layers, dim), float32, prompts in
    the order given.
    """
    from .hf_multimodal import check_prompts  # torch is imported only when features are extracted

    prompts = check_prompts(prompts)
    if isinstance(model, (str, Path)):
        from .registry import load_extractor

        load_keys = {"trust_remote_code", "revision", "device", "dtype"}
        load_opts = {k: options.pop(k) for k in list(options) if k in load_keys}
        model = load_extractor(model, **load_opts)
    if not isinstance(model, Extractor):
        raise ValueError(
            f"model must be a model id, a local folder or an Extractor; got {type(model).__name__}."
        )
    feats = model.extract(
        images, prompts, "all" if layers is None else layers, pooling=pooling, reuse=reuse, **options
    )
    return np.stack([feats[name].values for name in prompts]).astype(np.float32, copy=False)
