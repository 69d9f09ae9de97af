"""Map a model id or local folder to its feature adapter by ``config.model_type``.

Loading is offline and safe by default: ``local_files_only=True`` (a hub id
works only if it is already in the local Hugging Face cache),
``use_safetensors=True`` (no pickle), and ``trust_remote_code=False`` unless
the caller explicitly asks for it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable
from weakref import WeakKeyDictionary

from .hf_loading import chat_model_factory, hf_kwargs, load_model, resolve_dtype

__all__ = [
    "ADAPTERS",
    "register_adapter",
    "supported_model_types",
    "load_extractor",
    "read_model_type",
    "fingerprint",
    "fingerprint_source",
    "weights_digest",
]

#: model_type -> factory(path, **options) returning an Extractor.
ADAPTERS: dict[str, Callable[..., Any]] = {}


def register_adapter(model_type: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Register ``factory(model_path, **options) -> Extractor`` for a ``config.model_type``."""
    if model_type in ADAPTERS and not overwrite:
        raise ValueError(f"model_type {model_type!r} already has an adapter; pass overwrite=True to replace it.")
    ADAPTERS[model_type] = factory


def supported_model_types() -> list[str]:
    """Sorted list of model types with an adapter."""
    return sorted(ADAPTERS)


def read_model_type(model: str | Path, *, trust_remote_code: bool = False, revision: str | None = None) -> str:
    """``config.model_type`` of a model id or local folder (offline)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(model), **hf_kwargs(trust_remote_code, revision))
    except (OSError, ValueError) as err:
        raise ValueError(
            f"model={str(model)!r}: no readable config.json (offline). Pass a local folder holding config.json "
            f"and safetensors weights, or a hub id already in the local Hugging Face cache. ({err})"
        ) from None
    return str(config.model_type)


def load_extractor(
    model: str | Path,
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    device: str | None = None,
    dtype: str = "float32",
    **options: Any,
):
    """Build the feature extractor of a model id or local folder.

    Parameters
    ----------
    model : str or Path
        Local folder, or hub id present in the local cache.
    trust_remote_code : bool
        Run code shipped with the checkpoint. Off by default; turning it on
        emits a warning, since that code runs with your permissions.
    revision : str, optional
        Hub revision (recorded in the features' metadata).
    device : str, optional
        "cpu", "cuda", "cuda:N" or "auto" (shard over the GPUs with accelerate); by default "cuda" when torch
        sees a GPU, else "cpu" (:func:`brainalign.features.hf_loading.check_device`).
    dtype : {"float32", "bfloat16", "float16", "auto"}
        Weights and activations; "auto" is the checkpoint's own. Features come back float32 whatever it is.
    **options
        Passed to the adapter (``pooling``, ``generation``, ``prompt_batch_size``...).

    Raises
    ------
    ValueError
        If the model type has no adapter (the message lists the supported ones).
    """
    if trust_remote_code:
        warnings.warn(
            f"trust_remote_code=True for {model!r}: Python code shipped with this checkpoint will run with your "
            "permissions. Only do this for checkpoints whose code you have read.",
            UserWarning,
            stacklevel=2,
        )
    model_type = read_model_type(model, trust_remote_code=trust_remote_code, revision=revision)
    if model_type not in ADAPTERS:
        raise ValueError(
            f"model={str(model)!r} has config.model_type={model_type!r}, which has no feature adapter. "
            f"Supported model types: {', '.join(supported_model_types())}. "
            "Register one with brainalign.features.registry.register_adapter(model_type, factory)."
        )
    dtype = resolve_dtype(dtype, str(model), hf_kwargs(trust_remote_code, revision))  # "auto" -> the checkpoint's
    return ADAPTERS[model_type](
        str(model),
        trust_remote_code=trust_remote_code,
        revision=revision,
        device=device,
        dtype=dtype,
        **options,
    )


def weights_digest(source: str | Path, revision: str | None = None) -> str:
    """sha256 of a checkpoint's ``*.json`` and ``*.safetensors`` files (subfolders included).

    ``source`` is a local folder or a hub id resolved in the local Hugging Face
    cache (its snapshot folder); if neither exists, the id and revision stand
    in for the content.
    """
    import hashlib

    folder = Path(str(source))
    if not folder.is_dir():  # a hub id: hash its snapshot in the local cache when there is one
        try:
            from transformers.utils import cached_file

            config = cached_file(str(source), "config.json", local_files_only=True, revision=revision,
                                 _raise_exceptions_for_missing_entries=False)
            folder = Path(config).parent if config else folder
        except OSError:
            pass
    h = hashlib.sha256()
    if folder.is_dir():
        for f in sorted(folder.rglob("*.json")) + sorted(folder.rglob("*.safetensors")):
            h.update(str(f.relative_to(folder)).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    else:
        h.update(f"{source}@{revision or 'main'}".encode())
    return h.hexdigest()


def fingerprint_source(
    source: str | Path, *, model_type: str | None = None, dtype: str = "float32", revision: str | None = None,
    digest: str | None = None, **settings: Any,
) -> str:
    """Fingerprint of a checkpoint + extraction settings, computable without loading the model.

    Equal to :func:`fingerprint` of the extractor that :func:`load_extractor`
    builds from ``source`` with the same ``dtype``.
    """
    import hashlib
    import json

    digest = digest or weights_digest(source, revision)
    dtype = resolve_dtype(dtype, str(source), hf_kwargs(False, revision))
    model_type = model_type or read_model_type(source, revision=revision)
    blob = json.dumps({"weights": digest, "model_type": model_type, "dtype": dtype, **settings},
                      sort_keys=True, default=str)
    return f"{source}@{digest[:16]}|{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


#: weight digest of each live extractor (computed once; forgotten with the extractor)
_DIGESTS: WeakKeyDictionary[Any, str] = WeakKeyDictionary()


def fingerprint(extractor: Any, **settings: Any) -> str:
    """What identifies an extractor's features, for content-addressed caching.

    sha256 of the checkpoint's config/weight files, its model type, the dtype
    and ``settings`` (pooling, component, generation config...). The weight
    digest is computed once per extractor.
    """
    source = extractor.meta.get("source", extractor.model_id)
    try:
        digest = _DIGESTS.get(extractor)
    except TypeError:  # an extractor that cannot be weakly referenced or hashed: digest every time
        digest = None
    if digest is None:
        digest = weights_digest(source, extractor.meta.get("revision"))
        try:
            _DIGESTS[extractor] = digest
        except TypeError:
            pass
    return fingerprint_source(source, model_type=extractor.model_type, dtype=extractor.meta.get("dtype", "float32"),
                              revision=extractor.meta.get("revision"), digest=digest, **settings)


def _encoder_factory(cls_name: str, module: str, processor: str = "AutoImageProcessor"):
    """The factory of a feature encoder: ``AutoModel`` + its ``processor``, wrapped by ``module.cls_name``.

    The vision, video and audio encoders differ only by these names, so one factory serves the three.
    """

    def factory(path: str, *, trust_remote_code: bool, revision: str | None, device: str | None, dtype: str,
                **opts):
        import importlib

        import transformers

        cls = getattr(importlib.import_module(f"brainalign.features.{module}"), cls_name)
        hf = hf_kwargs(trust_remote_code, revision)
        model = load_model("AutoModel", path, hf, dtype=dtype, device=device)
        proc = getattr(transformers, processor).from_pretrained(path, **hf)
        meta = {"source": path, "revision": revision, "dtype": dtype}
        return cls(model, proc, model_id=opts.pop("model_id", path), meta=meta, **opts)

    return factory


_vision_factory = _encoder_factory("VisionEncoderExtractor", "hf_vision")
_video_factory = _encoder_factory("VideoEncoderExtractor", "hf_vision")
_audio_factory = _encoder_factory("AudioEncoderExtractor", "hf_audio", "AutoFeatureExtractor")


def _instructblip_factory(path: str, *, trust_remote_code: bool, revision: str | None, device: str | None,
                          dtype: str, **opts):
    """InstructBLIP also needs its Q-Former's tokenizer, so it loads its processors its own way."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    from .hf_instructblip import InstructBlipExtractor

    hf = hf_kwargs(trust_remote_code, revision)
    model = load_model("InstructBlipForConditionalGeneration", path, hf, dtype=dtype, device=device)
    try:
        proc = AutoProcessor.from_pretrained(path, **hf)
        tok, qtok, imp, note = proc.tokenizer, proc.qformer_tokenizer, proc.image_processor, "AutoProcessor"
    except Exception as err:  # noqa: BLE001 - explicit, recorded fallback
        tok = AutoTokenizer.from_pretrained(path, **hf)
        qtok = AutoTokenizer.from_pretrained(path, subfolder="qformer_tokenizer", **hf)
        imp = AutoImageProcessor.from_pretrained(path, **hf)
        note = f"AutoTokenizer x2 + AutoImageProcessor; AutoProcessor unavailable ({type(err).__name__})"
    meta = {"source": path, "revision": revision, "dtype": dtype, "processor": note}
    return InstructBlipExtractor(model, tok, qtok, imp, model_id=opts.pop("model_id", path), meta=meta, **opts)


register_adapter("instructblip", _instructblip_factory)
for _mt in ("vit", "clip", "clip_vision_model", "dinov2", "siglip", "siglip_vision_model"):
    register_adapter(_mt, _vision_factory)
for _mt in ("videomae", "vivit"):
    register_adapter(_mt, _video_factory)
for _mt in ("wav2vec2", "audio-spectrogram-transformer", "hubert", "wavlm"):
    register_adapter(_mt, _audio_factory)
# every chat model: one factory, told the adapter class and the transformers class that loads the checkpoint
for _mt, (_module, _cls, _auto) in {
    "qwen2_5_vl": ("hf_vlm_families", "QwenVLExtractor", "AutoModelForImageTextToText"),
    "qwen2_vl": ("hf_vlm_families", "QwenVLExtractor", "AutoModelForImageTextToText"),
    "llava": ("hf_vlm_families", "LlavaExtractor", "AutoModelForImageTextToText"),
    "internvl": ("hf_vlm_families", "InternVLExtractor", "AutoModelForImageTextToText"),
    "idefics2": ("hf_vlm_families", "Idefics2Extractor", "AutoModelForImageTextToText"),
    "llava_next": ("hf_vlm_families", "LlavaNextExtractor", "AutoModelForImageTextToText"),
    "qwen2_audio": ("hf_audio_llm", "QwenAudioExtractor", "Qwen2AudioForConditionalGeneration"),
    "llava_next_video": ("hf_video_llava", "LlavaNextVideoExtractor", "LlavaNextVideoForConditionalGeneration"),
    "video_llava": ("hf_video_llava", "VideoLlavaExtractor", "VideoLlavaForConditionalGeneration"),
    "idefics": ("hf_idefics", "IdeficsExtractor", "IdeficsForVisionText2Text"),
}.items():
    register_adapter(_mt, chat_model_factory(_module, _cls, _auto))
