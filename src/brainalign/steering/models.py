"""Loading causal LMs (checkpoint id or local folder, offline) and tiny seeded ones built from a config.

:func:`build_tiny_causal_lm` writes a folder that loads through the ordinary
``AutoModelForCausalLM.from_pretrained(folder, local_files_only=True,
use_safetensors=True)`` path: random weights (``torch.manual_seed(seed)``), a
Qwen2 / Llama / Gemma architecture, and a byte-level BPE tokenizer trained
offline on the deductive-reasoning prompt vocabulary, in which ``True`` and ``False`` are
single tokens. :func:`untrained_copy` gives the random-init control of any model.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["build_tiny_causal_lm", "load_causal_lm", "untrained_copy", "answer_token_ids", "ARCHITECTURES"]

ARCHITECTURES = ("qwen2", "llama", "gemma", "gemma2")


def _training_text() -> list[str]:
    from brainalign.features.prompts import DEDUCTIVE_CHAT
    from brainalign.steering import tasks

    text = list(DEDUCTIVE_CHAT.values()) + [tasks.PROPOSITIONAL_SYSTEM]
    text += [" ".join(tasks.PSEUDOWORDS), " ".join(tasks.ADJECTIVES), " ".join(tasks.NAMES)]
    text += [" ".join(p) for p in tasks.COMPARATIVES]
    text += ["All No Some are is than if then either or it is not the case that the Premises Conclusion"]
    text += ["True False True. False. True False"] * 20
    return text


def tiny_arch_for(model_id: str) -> str:
    """The tiny architecture standing in for a checkpoint id (``steer --models tiny``).

    Qwen2/Qwen3 → qwen2, Gemma-2 → gemma2, Gemma → gemma, Llama → llama; Mistral and Phi-3/4 → llama (their
    decoder layers are Llama's: RMSNorm, rotary attention, gated MLP).

    Raises
    ------
    ValueError
        For an id naming none of these families.
    """
    m = model_id.lower()
    for key, arch in (("gemma-2", "gemma2"), ("gemma2", "gemma2"), ("gemma", "gemma"), ("qwen", "qwen2"),
                      ("llama", "llama"), ("mistral", "llama"), ("phi", "llama")):
        if key in m:
            return arch
    raise ValueError(f"--models tiny cannot tell the architecture of {model_id!r}; it knows Qwen, Llama, Mistral, Phi "
                     "and Gemma checkpoints.")


def build_tiny_causal_lm(folder: str | Path, arch: str = "qwen2", *, hidden_size: int = 64, num_layers: int = 4,
                         num_heads: int = 4, vocab_size: int = 600, seed: int = 0,
                         initializer_range: float = 0.02) -> Path:
    """Write a tiny random-init causal LM of architecture ``arch`` to ``folder``.

    Parameters
    ----------
    folder : str or Path
    arch : {"qwen2", "llama", "gemma", "gemma2"}
    hidden_size, num_layers, num_heads, vocab_size : int
    initializer_range : float
        Std of the random weights (larger gives activations of a trained model's scale).
    seed : int
        Seed of the weights (the tokenizer is deterministic).

    Returns
    -------
    Path of the folder.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    # the tiny-model builders' tokenizer helpers, so steering's tiny LMs tokenize the same way
    from brainalign.features.tiny import (QWEN_CHAT_TEMPLATE, QWEN_SPECIALS, save_tokenizer as _save_tokenizer,
                                          train_bpe as _train_bpe)

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch={arch!r}; use one of {ARCHITECTURES}.")
    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specials = QWEN_SPECIALS[:3]
    tok = _train_bpe(specials, vocab_size, qwen_split=arch == "qwen2", extra_text=_training_text())
    ids = _save_tokenizer(tok, folder, "Qwen2Tokenizer" if arch == "qwen2" else "PreTrainedTokenizerFast",
                          QWEN_CHAT_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                          bos_token="<|endoftext|>")
    kw = dict(hidden_size=hidden_size, intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
              num_attention_heads=num_heads, num_key_value_heads=max(1, num_heads // 2),
              head_dim=hidden_size // num_heads, vocab_size=tok.get_vocab_size(), max_position_embeddings=1024,
              bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
              tie_word_embeddings=arch.startswith("gemma"), initializer_range=initializer_range)
    if arch == "gemma2":
        kw.update(sliding_window=256, query_pre_attn_scalar=hidden_size // num_heads)
    config = AutoConfig.for_model(arch, **kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def load_causal_lm(source: str | Path, *, dtype: str = "float32", device: str | None = "cpu",
                   revision: str | None = None):
    """Load ``(model, tokenizer)`` from a hub id (already in the local cache) or a local folder, offline.

    Loads through :func:`brainalign.features.hf_loading.load_model`, the one loading path of brainalign:
    safetensors only, no remote code, in ``dtype`` on ``device``. The tokenizer pads on the left so the last
    input token of every row sits at position -1 (batched greedy decoding).

    Parameters
    ----------
    source : str or Path
    dtype : {"float32", "bfloat16", "float16", "auto"}
        "auto" is the checkpoint's own dtype.
    device : str, optional
        "cpu", "cuda", "cuda:N", "auto" (shard over the GPUs with accelerate), or None (a GPU when torch sees
        one, else the CPU).
    revision : str, optional

    Raises
    ------
    ValueError
        A folder without config.json, a checkpoint not available offline, a bad dtype or a missing device.
    """
    from transformers import AutoTokenizer

    from brainalign.features.hf_loading import hf_kwargs, load_model

    src = str(source)
    if Path(src).exists() and not (Path(src) / "config.json").exists():
        raise ValueError(f"source={src!r} is a folder without config.json; give a checkpoint folder or a hub id.")
    hf = hf_kwargs(False, revision)
    try:
        tok = AutoTokenizer.from_pretrained(src, **hf)
        model = load_model("AutoModelForCausalLM", src, hf, dtype=dtype, device=device)
    except OSError as err:
        raise ValueError(f"cannot load {src!r} offline ({err}); download it into the Hugging Face cache first "
                         "or give a local folder with config.json + *.safetensors.") from err
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


def untrained_copy(model, seed: int = 0):
    """A randomly initialised model with ``model``'s config (the paper's "untrained" control).

    Built in ``model``'s dtype and placed where ``model`` is (the same shards of a ``device_map`` model), so that
    the control of a bfloat16 GPU model needs no float32 copy.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    fresh = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
    device_map = getattr(model, "hf_device_map", None)
    if device_map and len(set(device_map.values())) > 1:
        from accelerate import dispatch_model

        fresh = dispatch_model(fresh, device_map)
    else:
        fresh = fresh.to(model.device)
    fresh.eval()
    return fresh


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Token ids that start the answers 'True' and 'False'."""
    t = tokenizer.encode("True", add_special_tokens=False)
    f = tokenizer.encode("False", add_special_tokens=False)
    if not t or not f or t[0] == f[0]:
        raise ValueError("the tokenizer does not separate 'True' and 'False' by their first token.")
    return t[0], f[0]
