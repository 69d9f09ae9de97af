"""Offline, safe ``from_pretrained`` helpers shared by every Hugging Face adapter factory.

Loading is offline and safe by default: ``local_files_only=True`` (a hub id
works only if it is already in the local Hugging Face cache),
``use_safetensors=True`` (no pickle), and ``trust_remote_code=False`` unless
the caller explicitly asks for it.

This module imports neither torch nor transformers at import time, so the
registry that uses it stays light.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "device_for",
    "hf_kwargs",
    "load_model",
    "load_tokenizer_and_image_processor",
    "processor_chat_template",
    "checkpoint_file",
    "chat_model_factory",
]


def device_for(device: str | None) -> str:
    """The device to load on: ``device`` if given, else "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def hf_kwargs(trust_remote_code: bool, revision: str | None) -> dict[str, Any]:
    """Keyword arguments of every ``from_pretrained`` call: offline, remote code only when asked.

    Returns
    -------
    dict
        ``local_files_only=True``, ``trust_remote_code`` as given, and
        ``revision`` when one is given.
    """
    kw: dict[str, Any] = {"local_files_only": True, "trust_remote_code": bool(trust_remote_code)}
    if revision is not None:
        kw["revision"] = revision
    return kw


def load_model(model_class: str, path: str, hf: dict[str, Any], *, dtype: str, device: str | None):
    """``transformers.<model_class>.from_pretrained`` from safetensors, moved to its device, in eval mode.

    Parameters
    ----------
    model_class : str
        A class name of ``transformers`` (``"AutoModel"``, ``"IdeficsForVisionText2Text"``...).
    path : str
        Local folder, or hub id present in the local cache.
    hf : dict
        :func:`hf_kwargs` of the call.
    dtype : {"float32", "bfloat16", "float16"}
    device : str, optional
        See :func:`device_for`.
    """
    import torch
    import transformers

    model = getattr(transformers, model_class).from_pretrained(
        path, use_safetensors=True, dtype=getattr(torch, dtype), **hf
    )
    return model.to(device_for(device)).eval()


def checkpoint_file(path: str, name: str, hf: dict[str, Any]) -> Path | None:
    """Local path of the file ``name`` of a checkpoint (folder or cached hub id), or None if it has none."""
    from transformers.utils import cached_file

    kw = {k: v for k, v in hf.items() if k in ("local_files_only", "revision")}
    try:
        file = cached_file(path, name, _raise_exceptions_for_missing_entries=False, **kw)
    except OSError:
        file = None
    return Path(file) if file else None


def load_tokenizer_and_image_processor(path: str, hf: dict[str, Any]) -> tuple[Any, Any, str | None, str]:
    """Tokenizer, image processor and chat template; AutoProcessor first, then the explicit fallback.

    Returns
    -------
    tokenizer, image_processor, chat_template (str or None), note
        ``note`` says which route loaded them (recorded in the features' metadata).
    """
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        proc = AutoProcessor.from_pretrained(path, **hf)
        tok = getattr(proc, "tokenizer", None)
        imp = getattr(proc, "image_processor", None) or getattr(proc, "feature_extractor", None)
        if tok is not None and imp is not None:
            return tok, imp, getattr(proc, "chat_template", None), "AutoProcessor"
        note = "AutoProcessor returned no tokenizer/image_processor"
    except Exception as err:  # noqa: BLE001 - any failure here has an explicit, recorded fallback
        # e.g. Qwen2-VL's video processor needs torchvision, absent on CPU-only installs.
        note = f"AutoProcessor unavailable ({type(err).__name__}: {str(err).strip().splitlines()[0][:120]})"
    tok = AutoTokenizer.from_pretrained(path, **hf)
    try:
        imp = AutoImageProcessor.from_pretrained(path, **hf)
    except (OSError, ValueError):
        from transformers import AutoFeatureExtractor

        imp = AutoFeatureExtractor.from_pretrained(path, **hf)
    return tok, imp, processor_chat_template(path, hf), f"AutoTokenizer + AutoImageProcessor; {note}"


def processor_chat_template(path: str, hf: dict[str, Any]) -> str | None:
    """The processor's own chat template file (chat_template.jinja / .json), if the checkpoint has one."""
    import json

    for name in ("chat_template.jinja", "chat_template.json"):
        file = checkpoint_file(path, name, hf)
        if file:
            text = file.read_text(encoding="utf-8")
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None


def chat_model_factory(module: str, extractor: str,
                       model_class: str = "AutoModelForImageTextToText") -> Callable[..., Any]:
    """The factory of a chat model adapter: ``model_class`` + its processors, wrapped by ``module.extractor``.

    Every vision/audio-language adapter is built the same way and differs
    only by these names; what an adapter needs beyond the model, tokenizer,
    image processor and chat template comes from its
    ``checkpoint_options(path, hf, image_processor)`` classmethod.

    Parameters
    ----------
    module : str
        Module of ``brainalign.features`` holding the adapter class (imported on first use).
    extractor : str
        Adapter class name (a :class:`~brainalign.features.hf_multimodal.VisionLanguageExtractor`).
    model_class : str
        Class of ``transformers`` that loads the checkpoint.

    Returns
    -------
    factory(path, *, trust_remote_code, revision, device, dtype, **options) -> extractor
    """

    def factory(path: str, *, trust_remote_code: bool, revision: str | None, device: str | None, dtype: str,
                **opts: Any):
        cls = getattr(importlib.import_module(f"brainalign.features.{module}"), extractor)
        hf = hf_kwargs(trust_remote_code, revision)
        model = load_model(model_class, path, hf, dtype=dtype, device=device)
        tok, imp, template, note = load_tokenizer_and_image_processor(path, hf)
        extra_meta, extra_kwargs = cls.checkpoint_options(path, hf, imp)
        meta = {"source": path, "revision": revision, "dtype": dtype, "processor": note, **extra_meta}
        return cls(model, tok, imp, model_id=opts.pop("model_id", path), chat_template=template, meta=meta,
                   **extra_kwargs, **opts)

    return factory
