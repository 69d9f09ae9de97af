"""Reuse work across prompts for one stimulus.

For one stimulus and P prompts the naive path runs P full forwards (modality
encoder + language model over the whole chat). Here:

1. the modality encoder runs once;
2. the longest token prefix shared by all P sequences (system turn, image
   tokens, template up to the instruction) runs once through the language
   model, keeping its key/value cache and hidden states;
3. the P prompt-specific suffixes run as one batch (right-padded, so the
   causal mask alone keeps padding out of real tokens) on copies of the
   cache, with the same position ids (1-D or Qwen's 3-D M-RoPE) the full
   sequence would get.

Each prompt's hidden states are the prefix states followed by its suffix
states, exactly the sequence the naive path computes, so every pooling gives
the same features (up to float rounding, ~1e-6 in float32).

Responses (``pooling="generated"``) are decoded the same way: all prompts of
a stimulus decode together from the shared prefix cache, each row masking
its own right padding and continuing its own positions, with one seeded
generator per row, so each response equals the one-prompt-at-a-time decode.
"""
from __future__ import annotations

import copy
from typing import Any, Iterator, Sequence

import torch

from .hf_compat import cache_kwarg, output_cache

from .pooling import TokenSequence

#: The extractor these functions drive: a :class:`~brainalign.features.hf_multimodal.VisionLanguageExtractor` (it
#: imports this module, so the type is named here, not imported).
VisionLanguageExtractor = Any

__all__ = ["shared_prefix_length", "hidden_with_shared_prefix", "generate_with_shared_prefix"]


def shared_prefix_length(sequences: Sequence[torch.Tensor]) -> int:
    """Length of the longest common token prefix, leaving ≥ 1 suffix token per sequence.

    Parameters
    ----------
    sequences : list of 1-D LongTensor
    """
    min_len = min(int(s.numel()) for s in sequences)
    first = sequences[0][:min_len]
    same = torch.ones(min_len, dtype=torch.bool)
    for s in sequences[1:]:
        same &= s[:min_len] == first
    diff = (~same).nonzero()
    n = int(diff[0]) if diff.numel() else min_len
    return min(n, min_len - 1)


def _cat_positions(chunks: list[torch.Tensor]) -> torch.Tensor:
    """Right-pad position tensors (..., 1, L_i) to the longest and stack on the batch axis."""
    length = max(c.shape[-1] for c in chunks)
    padded = []
    for c in chunks:
        if c.shape[-1] < length:
            fill = c[..., -1:] + torch.arange(1, length - c.shape[-1] + 1, device=c.device)
            c = torch.cat([c, fill], dim=-1)
        padded.append(c)
    return torch.cat(padded, dim=-2)


def hidden_with_shared_prefix(
    extractor: VisionLanguageExtractor,
    seqs: Sequence[TokenSequence],
    image_inputs: dict[str, torch.Tensor],
    layers: list[int],
    component: str = "language",
    image_embeds: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """Hidden states of every sequence of one stimulus, sharing the prefix (yielded in order).

    Parameters
    ----------
    extractor : VisionLanguageExtractor
    seqs : list of tokenized sequences (same stimulus, different prompts)
    image_inputs : the stimulus' processed inputs
    layers : absolute hidden-state indices to keep
    component : "language" (hidden states) or "attention" (self-attention outputs)
    image_embeds : the stimulus' encoder output if already computed

    Yields
    ------
    Tensor (n_layers_sel, seq_len_i, dim), one per sequence, in order; a
    batch of suffixes is computed only when its first sequence is asked for,
    so a consumer that pools right away holds one batch of states at a time.
    Falls back to one full forward per sequence when the shared prefix does
    not contain every stimulus token (stimulus after the instruction).
    """
    ids = [s.ids for s in seqs]
    p = shared_prefix_length(ids)
    if any(bool(s.masks.stimulus[p:].any()) for s in seqs):
        for s in seqs:
            yield extractor.naive_hidden(s, image_inputs, layers, component)
        return

    lm = extractor.language_model
    if image_embeds is None:
        image_embeds, _ = extractor.encode_image(image_inputs, vision_states=False)
    positions = [extractor.position_ids(i[None], image_inputs) for i in ids]

    with extractor.capture(component, layers) as states:
        prefix = lm(
            inputs_embeds=extractor.embed(ids[0][:p], image_embeds)[None],
            position_ids=positions[0][..., :p],
            use_cache=True,
            output_hidden_states=True,
        )
        prefix_hidden = states(prefix)  # (n_sel, p, d)
        yield from _suffixes(extractor, lm, ids, positions, p, output_cache(prefix), prefix_hidden, states)


def _suffixes(extractor, lm, ids, positions, p, cache, prefix_hidden, states) -> Iterator[torch.Tensor]:
    """Run the prompt suffixes in batches on copies of the prefix cache."""
    batch = max(1, extractor.prompt_batch_size)
    for start in range(0, len(ids), batch):
        chunk = list(range(start, min(start + batch, len(ids))))
        lengths = [ids[i].numel() - p for i in chunk]
        width = max(lengths)
        suffix = torch.zeros(len(chunk), width, dtype=torch.long)
        for row, i in enumerate(chunk):
            suffix[row, : lengths[row]] = ids[i][p:]
        pos = _cat_positions([positions[i][..., p:] for i in chunk])
        past = copy.deepcopy(cache) if start + batch < len(ids) else cache
        if len(chunk) > 1:
            past.batch_repeat_interleave(len(chunk))
        res = lm(
            inputs_embeds=extractor.embed(suffix, None),
            position_ids=pos,
            **cache_kwarg(past),
            use_cache=True,
            output_hidden_states=True,
        )
        for row, i in enumerate(chunk):
            suffix_hidden = states(res, row)[:, : lengths[row]]
            yield torch.cat([prefix_hidden, suffix_hidden], dim=1)


@torch.inference_mode()
def generate_with_shared_prefix(
    extractor: VisionLanguageExtractor,
    seqs: Sequence[TokenSequence],
    image_inputs: dict[str, torch.Tensor],
    gen,
    image_embeds: torch.Tensor | None = None,
) -> list[TokenSequence]:
    """Decode every prompt's response for one stimulus, sharing encoder and prefix.

    Parameters
    ----------
    extractor : VisionLanguageExtractor
    seqs : tokenized input sequences (same stimulus, different prompts)
    image_inputs : the stimulus' processed inputs
    gen : GenerationConfig
    image_embeds : the stimulus' encoder output if already computed

    Returns
    -------
    list of sequences with the response appended (``masks.generated`` set,
    decoded text in ``.text``).
    """
    ids = [s.ids for s in seqs]
    p = shared_prefix_length(ids)
    if any(bool(s.masks.stimulus[p:].any()) for s in seqs):
        return [extractor.generate_response(s, image_inputs, gen) for s in seqs]
    lm = extractor.language_model
    head = extractor.model.get_output_embeddings()
    eos = extractor.eos_token_ids()
    device = extractor.device
    if image_embeds is None:
        image_embeds, _ = extractor.encode_image(image_inputs, vision_states=False)
    positions = [extractor.position_ids(i[None], image_inputs) for i in ids]
    prefix = lm(
        inputs_embeds=extractor.embed(ids[0][:p], image_embeds)[None],
        position_ids=positions[0][..., :p],
        use_cache=True,
    )
    cache = output_cache(prefix)

    out: list[TokenSequence] = []
    batch = max(1, extractor.prompt_batch_size)
    for start in range(0, len(ids), batch):
        chunk = list(range(start, min(start + batch, len(ids))))
        n = len(chunk)
        lengths = [ids[i].numel() - p for i in chunk]
        width = max(lengths)
        suffix = torch.zeros(n, width, dtype=torch.long)
        for row, i in enumerate(chunk):
            suffix[row, : lengths[row]] = ids[i][p:]
        past = copy.deepcopy(cache) if start + batch < len(ids) else cache
        if n > 1:
            past.batch_repeat_interleave(n)
        res = lm(
            inputs_embeds=extractor.embed(suffix, None),
            position_ids=_cat_positions([positions[i][..., p:] for i in chunk]),
            **cache_kwarg(past),
            use_cache=True,
        )
        rows = torch.arange(n, device=device)
        last = torch.tensor(lengths, device=device) - 1
        logits = head(res.last_hidden_state[rows, last])
        # attention over the cache: each row's real tokens, not its right padding
        mask = torch.zeros(n, p + width, dtype=torch.long, device=device)
        for row, length in enumerate(lengths):
            mask[row, : p + length] = 1
        next_pos = torch.cat([positions[i][..., -1:] + 1 for i in chunk], dim=-2)  # (..., n, 1)
        generators = [extractor.seeded_generator(gen) for _ in chunk]
        new: list[list[torch.Tensor]] = [[] for _ in chunk]
        done = [False] * n
        for step in range(gen.max_new_tokens):
            toks = extractor.next_tokens(logits, gen, generators)
            for row in range(n):
                if not done[row]:
                    new[row].append(toks[row : row + 1])
                    done[row] = int(toks[row]) in eos
            if all(done) or step == gen.max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones(n, 1, dtype=mask.dtype, device=device)], dim=1)
            res = lm(
                inputs_embeds=extractor.embed(toks[:, None], None),
                position_ids=next_pos + step,
                attention_mask=mask,
                **cache_kwarg(past),
                use_cache=True,
            )
            logits = head(res.last_hidden_state[:, -1])
        for row, i in enumerate(chunk):
            tokens = torch.cat(new[row]) if new[row] else torch.zeros(0, dtype=torch.long)
            out.append(extractor.with_response(seqs[i], tokens))
    return out
