"""Token pooling: turn per-token hidden states into one vector per layer.

Every adapter produces, for one (stimulus, prompt) sequence, hidden states of
shape (n_layers, seq_len, dim) and boolean token masks of shape (seq_len,)
saying which tokens are stimulus tokens (image/video/audio placeholders), which
belong to the prompt text, and which were generated. :func:`pool_tokens`
reduces them with one of :data:`POOLINGS`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["POOLINGS", "TokenMasks", "TokenSequence", "GenerationConfig", "pool_tokens", "check_pooling", "next_tokens"]

#: Supported pooling names and what they average.
POOLINGS: dict[str, str] = {
    "mean": "mean over all input tokens (chat template included)",
    "stimulus": "mean over stimulus tokens only (image/video/audio placeholders)",
    "prompt": "mean over the prompt text's tokens only",
    "last": "the last input token (the position that produces the answer)",
    "generated": "mean over the tokens of the generated response",
}


@dataclass
class GenerationConfig:
    """How responses are generated for ``pooling="generated"``.

    Attributes
    ----------
    max_new_tokens : int
        Length cap of the response.
    do_sample : bool
        False (default): greedy decoding. True: top-k sampling.
    top_k : int
        k of top-k sampling (the NSD study's mPLUG-Owl code used 5).
    temperature : float
        Sampling temperature (only with ``do_sample=True``).
    seed : int
        Torch seed set before each (stimulus, prompt) generation, so sampled
        responses are reproducible and independent of processing order.
    """

    max_new_tokens: int = 16
    do_sample: bool = False
    top_k: int = 5
    temperature: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "top_k": self.top_k,
            "temperature": self.temperature,
            "seed": self.seed,
        }


@dataclass
class TokenMasks:
    """Boolean masks of shape (seq_len,) over one token sequence."""

    stimulus: torch.Tensor
    prompt: torch.Tensor
    generated: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_input(self) -> int:
        """Number of input tokens (everything before the generated response)."""
        if self.generated is None:
            return int(self.stimulus.shape[0])
        return int((~self.generated).sum())


def check_pooling(pooling: str) -> str:
    """Validate a pooling name; return it."""
    if pooling not in POOLINGS:
        raise ValueError(
            f"pooling={pooling!r} is not supported. Choose one of {sorted(POOLINGS)} "
            f"({'; '.join(f'{k}: {v}' for k, v in POOLINGS.items())})."
        )
    return pooling


def pool_tokens(hidden: torch.Tensor, masks: TokenMasks, pooling: str) -> torch.Tensor:
    """Pool hidden states over tokens.

    Parameters
    ----------
    hidden : Tensor of shape (n_layers, seq_len, dim)
        Hidden states of one sequence (input tokens, then generated tokens if
        any).
    masks : TokenMasks
        Token roles over ``seq_len``.
    pooling : str
        One of :data:`POOLINGS`.

    Returns
    -------
    Tensor of shape (n_layers, dim), float32. Means are accumulated in
    float64.
    """
    check_pooling(pooling)
    seq_len = hidden.shape[1]
    n_input = masks.n_input
    if pooling == "last":
        return hidden[:, n_input - 1].float()
    if pooling == "mean":
        sel = torch.zeros(seq_len, dtype=torch.bool, device=hidden.device)
        sel[:n_input] = True
    elif pooling == "stimulus":
        sel = masks.stimulus
    elif pooling == "prompt":
        sel = masks.prompt
    else:  # generated
        if masks.generated is None:
            raise ValueError("pooling='generated' needs generated tokens; none were produced for this sequence.")
        sel = masks.generated
    sel = sel.to(hidden.device)
    count = int(sel.sum())
    if count == 0:
        raise ValueError(
            f"pooling={pooling!r} selects no token in this sequence (no {pooling} tokens). "
            "Use pooling='mean' or 'last', or check the prompt/stimulus."
        )
    return hidden[:, sel].double().mean(dim=1).float()


def next_tokens(
    logits: torch.Tensor, gen: GenerationConfig, generators: list[torch.Generator], banned: list[int] = ()
) -> torch.Tensor:
    """Pick one token per row of ``logits`` (B, vocab): greedy, or top-k sampling with temperature.

    ``banned`` ids (stimulus placeholders) are never picked. Each row samples
    with its own generator, so a row's draw does not depend on the other
    rows of a batch.
    """
    logits = logits.float().clone()
    if len(banned):
        logits[:, list(banned)] = float("-inf")
    if not gen.do_sample:
        return logits.argmax(-1)
    logits = logits / gen.temperature
    if gen.top_k and gen.top_k < logits.shape[-1]:
        kth = torch.topk(logits, gen.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.cat([torch.multinomial(probs[b], 1, generator=g) for b, g in enumerate(generators)])


class TokenSequence:
    """One tokenized (stimulus, prompt[, response]) sequence."""

    __slots__ = ("ids", "masks", "text")

    def __init__(self, ids: torch.Tensor, masks: TokenMasks, text: str = ""):
        self.ids = ids
        self.masks = masks
        self.text = text
