"""``--models tiny``: run a study config with small, seeded, config-built models of the same architectures.

A study config names 7B checkpoints that a CI machine cannot hold (and this
one cannot download). :func:`tiny_models` swaps every multimodal model's
``source`` for a tiny random model built from a config of its
``model_type`` (through :mod:`brainalign.features.tiny`), so the whole
pipeline — processors, chat templates, adapters, pooling, cache, encoding,
statistics, report — runs unchanged and fast. The numbers are meaningless as
science (random weights); the run proves the plumbing. Text models keep their
source (the packaged MiniLM is small already).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from brainalign.config import ModelSpec

__all__ = ["tiny_model", "tiny_models", "TINY_MARKER"]

#: File marking a folder as a generated stand-in (exempt from the --data-root containment check: it is not data).
TINY_MARKER = "BRAINALIGN_TINY_MODEL"


def _builders() -> dict[str, Callable[..., Path]]:
    from brainalign.features.tiny import extra as tx, models as tm

    def qwen2_vl(folder, seed=0):
        return tm.build_tiny_qwen2_5_vl(folder, variant="qwen2_vl", seed=seed)

    # every build_tiny_<model_type> builder joins by its name; these two types break that convention
    table = {"qwen2_vl": qwen2_vl, "audio-spectrogram-transformer": tm.build_tiny_ast}
    for mod in (tm, tx):
        for name in dir(mod):
            if name.startswith("build_tiny_") and name[len("build_tiny_"):] not in table:
                table[name[len("build_tiny_"):]] = getattr(mod, name)
    return table



def tiny_model(model_type: str, cache_dir: str | Path, seed: int = 0) -> Path:
    """Folder of a tiny model of ``model_type``, built once into ``cache_dir`` (atomically: build, then rename).

    Raises
    ------
    ValueError
        If no tiny builder exists for the type (the message lists those that do).
    """
    builders = _builders()
    if model_type not in builders:
        raise ValueError(f"--models tiny has no small builder for model_type {model_type!r}; available: "
                         f"{sorted(builders)}.")
    root = Path(cache_dir).expanduser()
    final = root / f"{model_type}-seed{seed}"
    if (final / "config.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_type}-", dir=root))
    try:
        builders[model_type](tmp, seed=seed)
        (tmp / TINY_MARKER).write_text(f"tiny random {model_type} built by brainalign --models tiny (seed {seed})\n")
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first: keep theirs
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def tiny_models(models: Sequence[ModelSpec], cache_dir: str | Path, seed: int = 0) -> list[ModelSpec]:
    """The config's ``models`` with every multimodal model's source a tiny model of its ``model_type``.

    Parameters
    ----------
    models : sequence of ModelSpec
        The config's ``models``; text models and frame baselines are returned as they are.
    cache_dir : str or Path
        Folder the tiny models are built into (once per type and seed).
    seed : int
        Seed of the tiny models' random weights (the experiment's seed); the k-th distinct ``source`` of one
        ``model_type`` uses ``seed + k``, so an instruction-tuned checkpoint and its base differ.

    Returns
    -------
    list of ModelSpec
        Copies with ``source`` the tiny model's folder, ``revision`` None and ``dtype`` float32.

    Raises
    ------
    ValueError
        For a multimodal model without ``model_type`` (the architecture cannot be guessed without its config).
    """
    out = []
    sources: dict[str, list[str]] = {}  # model_type → its distinct sources, in config order
    for m in models:
        if m.kind in ("text", "baseline"):  # small already / no weights
            out.append(m)
            continue
        if m.model_type is None:
            raise ValueError(f"models[{m.name}] has no model_type; --models tiny needs it to build a small model "
                             "of the same architecture (e.g. model_type: qwen2_5_vl).")
        # two checkpoints of one architecture (an instruction-tuned model and its base) get different weights, as
        # the real ones have; the same source twice (e.g. weights: random beside pretrained) the same folder
        seen = sources.setdefault(m.model_type, [])
        if m.source not in seen:
            seen.append(m.source)
        folder = tiny_model(m.model_type, cache_dir, seed=seed + seen.index(m.source))
        out.append(m.model_copy(update=dict(source=str(folder), revision=None, dtype="float32")))
    return out
