"""Steered multi-token generation against a hand-written step-by-step decoder.

The steering offset belongs to the prompt's last token only: it is added to that position's self-attention output
once, and every generated token then attends to the shifted prompt. ``greedy_answers`` gets this from ``generate``
with the key/value cache (the hook fires on the prefill pass only). The reference below recomputes the whole
sequence at every step without a cache, adding the offset at the prompt's last position each time, which is the
same computation written out. A decoder that re-adds the offset at every new token (the bug a reviewer fears)
differs from it, and the test checks that the two references do differ on these prompts, so it can catch it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from steering_fixtures import tiny_lm
from brainalign.steering import hooks, tasks

N_NEW = 4
LAYER = 1


def _prompts(tok, n=3):
    items = tasks.generate_items("syllogism", n, seed=3)
    return [tasks.item_prompt(i, tok) for i in items]


def _reference(model, tok, prompt: str, delta: torch.Tensor, every_step: bool) -> str:
    """Greedy decoding, one full forward pass per token, offset at the prompt's last token (or at the newest)."""
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"][0].tolist()
    p_last = len(ids) - 1
    new: list[int] = []
    attn = hooks.attention_module(hooks.decoder_layers(model)[LAYER])

    def add(module, args, out):
        h = out[0] if isinstance(out, tuple) else out
        pos = h.shape[1] - 1 if every_step else p_last
        h = h.clone()
        h[0, pos] += delta
        return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h

    handle = attn.register_forward_hook(add)
    try:
        with torch.no_grad():
            for _ in range(N_NEW):
                logits = model(input_ids=torch.tensor([ids + new])).logits
                nxt = int(logits[0, -1].argmax())
                if nxt == tok.eos_token_id:
                    break
                new.append(nxt)
    finally:
        handle.remove()
    return tok.decode(new, skip_special_tokens=True)


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_steered_generation_matches_step_by_step_reference(arch):
    model, tok = tiny_lm(arch)
    prompts = _prompts(tok)
    rng = np.random.default_rng(0)
    d = model.config.hidden_size
    offsets = 4.0 * rng.standard_normal((len(prompts), d)).astype(np.float32)

    with hooks.no_hooks_left(model):
        steered = hooks.greedy_answers(model, tok, prompts, offsets={LAYER: offsets}, max_new_tokens=N_NEW,
                                       batch_size=2)  # batches of 2 and 1: padding and a lone row
        plain = hooks.greedy_answers(model, tok, prompts, max_new_tokens=N_NEW, batch_size=2)

    once = [_reference(model, tok, p, torch.as_tensor(o), every_step=False) for p, o in zip(prompts, offsets)]
    again = [_reference(model, tok, p, torch.as_tensor(o), every_step=True) for p, o in zip(prompts, offsets)]
    zero = [_reference(model, tok, p, torch.zeros(d), every_step=False) for p in prompts]

    # the controls: the offsets matter, and re-adding them at every token would change the answers
    assert once != zero
    assert once != again
    assert plain == zero
    assert steered == once
