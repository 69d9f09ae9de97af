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
    "DTYPES",
    "device_for",
    "check_device",
    "resolve_dtype",
    "place_model",
    "input_device",
    "hf_kwargs",
    "load_model",
    "load_tokenizer_and_image_processor",
    "processor_chat_template",
    "checkpoint_file",
    "chat_model_factory",
]


#: dtypes a model may be loaded in; "auto" is the checkpoint's own (config.json ``dtype`` / ``torch_dtype``).
DTYPES = ("float32", "bfloat16", "float16", "auto")


def device_for(device: str | None) -> str:
    """The device to load on: ``device`` if given, else "cuda" when torch sees a GPU, else "cpu"."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: str | None, field: str = "device") -> None:
    """Reject a device this machine cannot load on, naming ``field`` and the fix.

    Parameters
    ----------
    device : str or None
        None (a GPU when torch sees one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, or
        ``"auto"``: shard the model over every visible GPU (then CPU memory) with accelerate's
        ``device_map="auto"``.
    field : str
        Name of the setting in the messages (e.g. ``"models.0.device"``).

    Raises
    ------
    ValueError
        An unknown device, a CUDA device torch does not see, or ``"auto"`` without accelerate.
    """
    import importlib.util
    import re

    import torch

    if device is None or device == "cpu":
        return
    if device == "auto":
        if importlib.util.find_spec("accelerate") is None:
            raise ValueError(f"{field}='auto' shards the model with accelerate (device_map='auto'), which is not "
                             "installed; pip install 'brainalign[steering]' (or accelerate), or set "
                             f"{field}: cuda / cpu.")
        return
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if m:
        if not torch.cuda.is_available():
            raise ValueError(f"{field}={device!r} but torch {torch.__version__} sees no CUDA GPU on this machine; "
                             f"set {field}: cpu (or leave it out: a GPU when one is seen, else the CPU), or run where "
                             "a GPU and a CUDA build of torch are installed.")
        if m.group(1) is not None and int(m.group(1)) >= torch.cuda.device_count():
            raise ValueError(f"{field}={device!r} but torch sees {torch.cuda.device_count()} GPU(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); choose one of them or 'auto'.")
        return
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"{field}='mps' but torch sees no Apple GPU here; set {field}: cpu.")
        return
    raise ValueError(f"{field}={device!r} is not a device; use cpu, cuda, cuda:N, mps or auto (shard over the GPUs).")


def resolve_dtype(dtype: str, path: str | None = None, hf: dict[str, Any] | None = None) -> str:
    """The dtype name a model is loaded in: ``dtype``, or for ``"auto"`` the checkpoint's own (float32 if unstated).

    Parameters
    ----------
    dtype : {"float32", "bfloat16", "float16", "auto"}
    path : str, optional
        Checkpoint folder or cached hub id (needed for ``"auto"``).
    hf : dict, optional
        ``from_pretrained`` keyword arguments (:func:`hf_kwargs`) used to read its config.

    Raises
    ------
    ValueError
        An unknown dtype name.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}: use one of {', '.join(DTYPES)}.")
    if dtype != "auto":
        return dtype
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(path), **(hf or hf_kwargs(False, None)))
    for sub in (cfg, getattr(cfg, "text_config", None)):
        found = getattr(sub, "dtype", None) or getattr(sub, "torch_dtype", None)
        if found is not None:
            name = str(found).removeprefix("torch.")
            return name if name in DTYPES else "float32"
    return "float32"


def place_model(model, device: str | None):
    """``model`` (built on the CPU) on its device in eval mode; ``device="auto"`` dispatches it over the GPUs."""
    check_device(device)
    if device == "auto":
        from accelerate import dispatch_model, infer_auto_device_map

        return dispatch_model(model, infer_auto_device_map(model)).eval()
    return model.to(device_for(device)).eval()


def input_device(model):
    """The device inputs go to: that of the input embeddings (the first shard of a sharded model).

    Returns
    -------
    torch.device
    """
    try:
        emb = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):  # dual encoders (CLIPModel) have no single input embedding
        emb = None
    weight = getattr(emb, "weight", None)
    return weight.device if weight is not None else next(model.parameters()).device


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
    """``transformers.<model_class>.from_pretrained`` from safetensors, on its device(s), in eval mode.

    The one loading path of every model brainalign reads (feature adapters, text models, steering's causal
    LMs): offline and safetensors-only as ``hf`` says, in ``dtype``, on ``device``.

    Parameters
    ----------
    model_class : str
        A class name of ``transformers`` (``"AutoModel"``, ``"AutoModelForCausalLM"``...).
    path : str
        Local folder, or hub id present in the local cache.
    hf : dict
        :func:`hf_kwargs` of the call.
    dtype : {"float32", "bfloat16", "float16", "auto"}
        See :func:`resolve_dtype`.
    device : str, optional
        See :func:`check_device`; ``"auto"`` loads straight onto the GPUs with ``device_map="auto"`` (a model
        larger than one GPU is split layer by layer), anything else loads on the CPU and moves.

    Raises
    ------
    ValueError
        A bad dtype, or a device this machine lacks (:func:`check_device`).
    """
    import torch
    import transformers

    check_device(device)
    name = resolve_dtype(dtype, path, hf)
    kw: dict[str, Any] = dict(use_safetensors=True, dtype=getattr(torch, name), **hf)
    if device == "auto":
        kw["device_map"] = "auto"
    model = getattr(transformers, model_class).from_pretrained(path, **kw)
    return model.eval() if device == "auto" else model.to(device_for(device)).eval()


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
