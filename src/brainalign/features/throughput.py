"""What the dry-runs assume a model's forward pass costs on a GPU: one rule from the parameter count.

A forward pass of a model with ``P`` parameters over ``T`` tokens costs about ``2 P T`` floating-point operations
(one multiply-add per weight per token). The dry-runs assume that one GPU sustains :data:`GPU_FLOPS` of them per
second in bfloat16/float16 (and a quarter of that in float32), so

    forward passes per second = GPU_FLOPS / (2 · P · T)      (per model replica)

and a model whose weights exceed :data:`GPU_MEMORY_BYTES` x 0.8 is sharded (``device: auto``) over as many GPUs
as it needs, which count in its GPU-hours. The choice of the numbers is in ``docs/choices.md``. ``P`` comes from
the checkpoint's config.json when it is local (or cached), else from :data:`PUBLISHED_PARAMS`, else from a size
in the model id ("-7B"), else 7 billion (said in the plan).
"""
from __future__ import annotations

import math
import re

__all__ = ["GPU_FLOPS", "GPU_MEMORY_BYTES", "GPU_NAME", "PUBLISHED_PARAMS", "TOKENS_PER_PASS", "params_from_config",
           "model_params", "ForwardCost", "forward_cost", "RULE"]

#: Effective bfloat16 FLOP/s of one GPU in batched inference: 100 TFLOP/s, about 10 % of an H100's dense peak
#: (short sequences, batch sizes of 8-32 and Python overhead keep inference far from the peak).
GPU_FLOPS = 100e12
#: float32 runs at a quarter of that (TF32 tensor cores at half the bf16 rate, plus twice the memory traffic).
FLOAT32_SLOWDOWN = 4.0
GPU_MEMORY_BYTES = 80 * 2**30
GPU_NAME = "80 GB GPU (H100-class)"
#: Tokens per forward pass assumed when the plan cannot count them: a filled text prompt; a stimulus (image,
#: clip or sound: a few hundred to a thousand placeholder tokens) with its prompt; a deductive-reasoning chat item.
TOKENS_PER_PASS = {"text": 64, "multimodal": 1024, "steering": 256}
RULE = (f"forward passes/s = {GPU_FLOPS / 1e12:.0f} TFLOP/s / (2 x parameters x tokens) per {GPU_NAME} in bf16/fp16, "
        f"{FLOAT32_SLOWDOWN:.0f}x slower in float32 (docs/choices.md)")

#: Parameter counts (model cards; rounded) of the checkpoints the shipped configs name, for plans made without them.
PUBLISHED_PARAMS = {
    "Salesforce/instructblip-vicuna-7b": 7.9e9,
    "Salesforce/instructblip-vicuna-13b": 14.2e9,
    "HuggingFaceM4/idefics-9b-instruct": 8.9e9,
    "google/vit-huge-patch14-224-in21k": 0.63e9,
    "openai/clip-vit-large-patch14": 0.43e9,
    "Qwen/Qwen2.5-VL-7B-Instruct": 8.3e9,
    "OpenGVLab/InternVL3-8B-hf": 7.9e9,
    "ByteDance-Seed/UI-TARS-7B-DPO": 8.3e9,
    "Qwen/Qwen2-VL-7B-Instruct": 8.3e9,
    "llava-hf/LLaVA-NeXT-Video-7B-hf": 7.1e9,
    "LanguageBind/Video-LLaVA-7B-hf": 7.4e9,
    "Qwen/Qwen2-Audio-7B-Instruct": 8.4e9,
    "MCG-NJU/videomae-base": 0.09e9,
    "google/vivit-b-16x2-kinetics400": 0.09e9,
    "facebook/wav2vec2-base-960h": 0.09e9,
    "MIT/ast-finetuned-audioset-10-10-0.4593": 0.09e9,
    "Qwen/Qwen2-1.5B-Instruct": 1.5e9,
    "Qwen/Qwen2-7B-Instruct": 7.6e9,
    "Qwen/Qwen2-72B-Instruct": 72.7e9,
    "Qwen/Qwen3-4B": 4.0e9,
    "mistralai/Mistral-7B-Instruct-v0.2": 7.2e9,
    "meta-llama/Llama-2-7b-chat-hf": 6.7e9,
    "meta-llama/Meta-Llama-3-8B-Instruct": 8.0e9,
    "meta-llama/Llama-3.3-70B-Instruct": 70.6e9,
    "microsoft/Phi-4-mini-instruct": 3.8e9,
    "google/gemma-2-9b-it": 9.2e9,
}
_DEFAULT_PARAMS = 7e9


def _tower_params(cfg: dict) -> int:
    """Parameters of one transformer stack of a config.json section (embeddings, attention, MLP), or 0."""
    h = cfg.get("hidden_size") or cfg.get("d_model")
    n = cfg.get("num_hidden_layers") or cfg.get("depth") or cfg.get("num_layers")
    if not (isinstance(h, int) and isinstance(n, int)):
        return 0
    inner = cfg.get("intermediate_size")
    inner = inner if isinstance(inner, int) else 4 * h
    mlp = (3 if cfg.get("hidden_act", "gelu") in ("silu", "swish", "gelu_pytorch_tanh") else 2) * h * inner
    v = cfg.get("vocab_size") if isinstance(cfg.get("vocab_size"), int) else 0
    tied = bool(cfg.get("tie_word_embeddings", False))
    return int(n * (4 * h * h + mlp) + v * h * (1 if tied else 2))


def params_from_config(cfg: dict) -> int | None:
    """Approximate parameter count from a checkpoint's config.json (text and vision/audio towers), or None.

    Parameters
    ----------
    cfg : dict
        The parsed config.json.
    """
    towers = [cfg.get(k) for k in ("text_config", "vision_config", "audio_config", "qformer_config")
              if isinstance(cfg.get(k), dict)]
    total = sum(_tower_params(t) for t in towers) if towers else _tower_params(cfg)
    return total or None


def model_params(source: str, cfg: dict | None, assumed: list[str] | None = None) -> int:
    """Parameters of a model: its config.json, else :data:`PUBLISHED_PARAMS`, else a "-7B" in its id, else 7e9.

    Parameters
    ----------
    source : str
        Model id or folder.
    cfg : dict, optional
        Its config.json when local.
    assumed : list of str, optional
        Receives a note when the count is a guess.
    """
    found = params_from_config(cfg) if cfg else None
    if found:
        return found
    if source in PUBLISHED_PARAMS:
        return int(PUBLISHED_PARAMS[source])
    m = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", source)
    if m:
        return int(float(m.group(1)) * 1e9)
    if assumed is not None:
        assumed.append(f"{source}: {_DEFAULT_PARAMS / 1e9:.0f}B parameters (config not local)")
    return int(_DEFAULT_PARAMS)


class ForwardCost:
    """GPU cost of ``passes`` forward passes of a ``params``-parameter model over ``tokens`` tokens each.

    Attributes
    ----------
    passes_per_second : float
        Per model replica (all its GPUs together), by :data:`RULE`.
    n_gpus : int
        GPUs that hold the weights (``device: auto`` shards beyond one).
    gpu_hours : float
        ``passes / passes_per_second / 3600 x n_gpus``.
    """

    def __init__(self, params: int, tokens: int, passes: int, dtype: str = "bfloat16"):
        bytes_per = 4 if dtype == "float32" else 2
        flops = GPU_FLOPS / (FLOAT32_SLOWDOWN if dtype == "float32" else 1.0)
        self.params, self.tokens, self.passes, self.dtype = int(params), int(tokens), int(passes), dtype
        self.n_gpus = max(1, math.ceil(params * bytes_per / (0.8 * GPU_MEMORY_BYTES)))
        self.passes_per_second = flops / (2.0 * params * tokens)
        self.gpu_hours = passes / self.passes_per_second / 3600 * self.n_gpus

    def describe(self) -> str:
        return (f"{self.params / 1e9:.2f}B params, {self.dtype}, ~{self.tokens} tokens/pass: "
                f"{self.passes_per_second:,.1f} passes/s on {self.n_gpus} GPU(s), {self.passes:,} passes, "
                f"{self.gpu_hours:,.2f} GPU-hours")


def forward_cost(params: int, tokens: int, passes: int, dtype: str = "bfloat16") -> ForwardCost:
    """:class:`ForwardCost` of a plan row (``dtype: auto`` counts as bfloat16, the usual checkpoint dtype)."""
    return ForwardCost(params, tokens, passes, "bfloat16" if dtype == "auto" else dtype)
