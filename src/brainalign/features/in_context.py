"""In-context prompts for the multimodal adapters: k worked examples before the query.

Seed 001 compared instruction-tuned models with in-context-learning (ICL)
ones. Here any :class:`~brainalign.features.hf_multimodal.VisionLanguageExtractor`
reads a multi-turn chat, built with the model's own chat template::

    user:      [example 1 stimulus] instruction      (stimulus left out when text-only)
    assistant: worked answer 1
    ...
    user:      [example k stimulus] instruction
    assistant: worked answer k
    user:      [query stimulus] instruction          <- pooled
    assistant:                                       (generation prompt)

and only the query's tokens are pooled: ``"stimulus"`` averages the query
stimulus' placeholder tokens, ``"prompt"`` the query instruction's tokens,
``"last"`` takes the last input token, ``"mean"`` averages the query turn
(from the query's user turn to the end of the input; with k >= 1 the system
turn and the examples are left out), ``"generated"`` the model's response to
the query. The examples reach the pooled tokens only through attention.
(Leaving the system turn out of ``"mean"`` changes little an encoding model
sees: that turn precedes every stimulus, so its states are the same for all
stimuli; when all queries have the same number of tokens it only shifts and
scales the mean uniformly.)

Every stimulus (examples and query) is encoded once by the modality encoder
and its embeddings are scattered into the placeholder slots in order; the
language model runs once per (query, prompt) on those embeddings with the
position ids the model itself would compute for the whole multi-image chat
(Qwen's M-RoPE included). With k = 0 the sequence is token for token the
one of :meth:`VisionLanguageExtractor.extract`.

Entry points:

- :func:`in_context_from_spec`: the pipeline's call for
  ``analysis.controls.in_context`` (an ``InContextSpec``);
- :func:`in_context_features`: the study-level call (seeded choice of k other
  stimuli of the study as examples for each query, with or without their
  stimuli, their answers given by the caller);
- :func:`extract_in_context`: explicit :class:`InContext` examples per query;
- :func:`choose_examples`: the seeded choice alone.
"""
from __future__ import annotations

import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .base import FeatureSet, resolve_layers
from .pooling import GenerationConfig, TokenMasks, check_pooling, pool_tokens

__all__ = [
    "Example",
    "InContext",
    "InContextSequence",
    "choose_examples",
    "build_contexts",
    "tokenize_in_context",
    "extract_in_context",
    "in_context_features",
    "in_context_from_spec",
    "QUERY_POOLINGS",
]

#: Poolings available for in-context features (all restricted to the query's tokens).
QUERY_POOLINGS: dict[str, str] = {
    "mean": "mean over the query turn's tokens (examples and system turn left out)",
    "stimulus": "mean over the query stimulus' tokens only",
    "prompt": "mean over the query instruction's tokens only",
    "last": "the last input token (the position that produces the answer)",
    "generated": "mean over the tokens of the model's response to the query (after its examples)",
}


@dataclass(frozen=True)
class Example:
    """One worked example: (optional) stimulus, instruction, answer.

    Attributes
    ----------
    answer : str
        The assistant turn that follows the example (non-empty).
    stimulus : image, frame sequence, Video or waveform, optional
        None for a text-only example (instruction + answer, no stimulus).
    instruction : str, optional
        The example's user text; None = the query's prompt.
    """

    answer: str
    stimulus: Any = None
    instruction: str | None = None


@dataclass(frozen=True)
class InContext:
    """The worked examples placed before one query.

    ``InContext(examples=[(stimulus, "answer"), ...])``: each entry is an
    :class:`Example` or a ``(stimulus, answer)`` / ``(stimulus, answer,
    instruction)`` tuple; ``stimulus=None`` makes a text-only example.
    """

    examples: tuple = ()

    def __post_init__(self) -> None:
        if isinstance(self.examples, (str, bytes)) or not hasattr(self.examples, "__len__"):
            raise ValueError(
                f"InContext.examples is a {type(self.examples).__name__}; pass a list of (stimulus, answer) "
                "pairs or Example objects, e.g. InContext(examples=[(image, 'A dog on a beach.')])."
            )
        out = []
        for i, ex in enumerate(self.examples):
            if isinstance(ex, Example):
                pass
            elif isinstance(ex, tuple) and len(ex) in (2, 3):
                ex = Example(answer=ex[1], stimulus=ex[0], instruction=ex[2] if len(ex) == 3 else None)
            else:
                raise ValueError(
                    f"InContext.examples[{i}] is a {type(ex).__name__}; each example is an Example or a "
                    "(stimulus, answer) tuple (stimulus None for a text-only example)."
                )
            if not isinstance(ex.answer, str) or not ex.answer.strip():
                raise ValueError(
                    f"InContext.examples[{i}] has an empty answer ({ex.answer!r}); a worked example needs its "
                    "answer text (e.g. the stimulus' label or caption)."
                )
            if ex.instruction is not None and (not isinstance(ex.instruction, str) or not ex.instruction.strip()):
                raise ValueError(
                    f"InContext.examples[{i}].instruction is empty ({ex.instruction!r}); give text or None "
                    "(None = the query's prompt)."
                )
            out.append(ex)
        object.__setattr__(self, "examples", tuple(out))

    @property
    def k(self) -> int:
        return len(self.examples)


# ----------------------------------------------------------------- choice
def _query_rng(seed: int, stimulus_id: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(b"in_context"), zlib.crc32(str(stimulus_id).encode())])


def choose_examples(
    stimulus_ids: Sequence[str],
    k: int,
    seed: int = 0,
    *,
    pool: Sequence[int] | None = None,
    identity: Sequence[str] | None = None,
) -> list[list[int]]:
    """Seeded choice of ``k`` example stimuli for every query (never the query itself).

    Each query draws its examples with a generator fixed by ``seed`` and its
    own id over the candidates sorted by id, so the choice does not depend on
    the order in which stimuli are listed, and the same seed always gives the
    same examples.

    Parameters
    ----------
    stimulus_ids : sequence of str, length n_stimuli
        Unique ids of the queries (and candidate examples).
    k : int
        Examples per query (>= 0).
    seed : int
    pool : sequence of int, optional
        Indices of the stimuli that may serve as examples (default: all).
    identity : sequence of str, length n_stimuli, optional
        Keys saying which stimuli are the same stimulus (e.g. content
        digests); a candidate with the query's key is never its example.
        Default: the ids.

    Returns
    -------
    list (one per query) of ``k`` example indices, in the order they are shown.

    Raises
    ------
    ValueError
        If ``k`` is negative, ids repeat, the pool has bad indices, or a
        query has fewer than ``k`` other candidates.
    """
    ids = [str(s) for s in stimulus_ids]
    n = len(ids)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k={k!r}: the number of in-context examples must be an integer >= 0.")
    if len(set(ids)) != n:
        dup = sorted({s for s in ids if ids.count(s) > 1})[:5]
        raise ValueError(f"stimulus_ids repeat ({dup}); every stimulus needs a unique id to be chosen as an example.")
    keys = ids if identity is None else [str(s) for s in identity]
    if len(keys) != n:
        raise ValueError(f"identity has {len(keys)} entries for {n} stimuli; give one key per stimulus.")
    if pool is None:
        pool = list(range(n))
    pool = [int(j) for j in pool]
    bad = [j for j in pool if not 0 <= j < n]
    if bad:
        raise ValueError(f"pool has indices {bad[:5]} outside 0..{n - 1}; pass indices into the stimulus list.")
    if len(set(pool)) != len(pool):
        raise ValueError("pool repeats indices; list each candidate example once.")
    out: list[list[int]] = []
    for i in range(n):
        cand = sorted((j for j in pool if keys[j] != keys[i]), key=lambda j: ids[j])  # order-free draw
        if len(cand) < k:
            raise ValueError(
                f"k={k} in-context examples: query {ids[i]!r} has only {len(cand)} other stimuli to draw from "
                f"(of {len(pool)} in the pool, {n} in all). Lower k to at most {len(cand)}, or give more "
                "stimuli (or a larger pool)."
            )
        if k == 0:
            out.append([])
            continue
        pick = _query_rng(seed, ids[i]).choice(len(cand), size=k, replace=False)
        out.append([cand[int(p)] for p in pick])
    return out


def build_contexts(
    stimuli: Sequence[Any],
    answers: Sequence[str],
    chosen: Sequence[Sequence[int]],
    *,
    with_stimuli: bool = True,
) -> list[InContext]:
    """One :class:`InContext` per query from chosen example indices.

    Parameters
    ----------
    stimuli : sequence, length n_stimuli
    answers : sequence of str, length n_stimuli
        The worked answer of each stimulus when it serves as an example.
    chosen : list (one per query) of example indices (see :func:`choose_examples`)
    with_stimuli : bool
        True: each example shows its stimulus; False: text-only examples.
    """
    if len(answers) != len(stimuli):
        raise ValueError(
            f"answers has {len(answers)} entries for {len(stimuli)} stimuli; give one answer per stimulus."
        )
    for j, a in enumerate(answers):
        if not isinstance(a, str) or not a.strip():
            raise ValueError(
                f"answers[{j}] is empty ({a!r}); every stimulus that may serve as an example needs its worked "
                "answer text (e.g. its label or caption)."
            )
    return [
        InContext(examples=[Example(answer=answers[j], stimulus=stimuli[j] if with_stimuli else None) for j in ex])
        for ex in chosen
    ]


# ----------------------------------------------------------- tokenization
@dataclass
class InContextSequence:
    """One tokenized in-context chat.

    Attributes
    ----------
    ids : LongTensor (seq_len,)
    masks : TokenMasks over the whole sequence; ``stimulus`` and ``prompt``
        mark the query's tokens only.
    query_start : int
        Index of the query turn's first token; pooling reads ``[query_start:]``.
    text : str
        The expanded chat text.
    """

    ids: torch.Tensor
    masks: TokenMasks
    query_start: int
    text: str


def _placeholder(extractor, kind: str) -> tuple[str, str]:
    """(string the chat template renders, token it expands to) for a stimulus kind."""
    if kind == "video":
        return extractor.video_token, extractor.video_token
    return extractor.placeholder or extractor.image_token, extractor.image_token


def _content(kind: str, n_frames: int) -> list[dict]:
    if kind == "audio":
        return [{"type": "audio", "audio_url": "stimulus"} for _ in range(n_frames)]
    return [{"type": kind} for _ in range(n_frames)]


def _expand(extractor, text: str, slots: list[tuple[str, int]]) -> str:
    """Replace the rendered placeholders, in order, by each frame's stimulus tokens."""
    marks = {_placeholder(extractor, "image")[0]} | ({extractor.video_token} if extractor.video_token else set())
    pattern = re.compile("|".join(re.escape(m) for m in sorted(marks, key=len, reverse=True)))
    found = pattern.findall(text)
    want = [_placeholder(extractor, kind)[0] for kind, _ in slots]
    if found != want:
        raise ValueError(
            f"the chat template of {extractor.model_id} rendered the placeholders {found} for the frames "
            f"{want}; check that the template shows every stimulus of every turn."
        )
    pieces = pattern.split(text)
    out = [pieces[0]]
    for (kind, count), piece in zip(slots, pieces[1:]):
        out.append(_placeholder(extractor, kind)[1] * count if kind == "video" else extractor.expand_placeholder(count))
        out.append(piece)
    return "".join(out)


def _render(extractor, messages: list[dict], generation_prompt: bool) -> str:
    return extractor.tokenizer.apply_chat_template(
        messages, chat_template=extractor.chat_template, tokenize=False, add_generation_prompt=generation_prompt
    )


def tokenize_in_context(
    extractor,
    prompt: str,
    query: tuple[str, Sequence[int]],
    examples: Sequence[tuple[tuple[str, Sequence[int]] | None, str, str]] = (),
) -> InContextSequence:
    """Input ids and query-only token roles of one in-context chat.

    Parameters
    ----------
    extractor : VisionLanguageExtractor
    prompt : str
        The query's instruction.
    query : (kind, tokens per frame) of the query stimulus
    examples : list of (stimulus (kind, tokens per frame) or None, instruction, answer)

    Returns
    -------
    InContextSequence
    """
    messages: list[dict] = []
    slots: list[tuple[str, int]] = []
    for stim, instruction, answer in examples:
        content = []
        if stim is not None:
            kind, counts = stim
            content = _content(kind, len(counts))
            slots += [(kind, int(c)) for c in counts]
        messages.append({"role": "user", "content": content + [{"type": "text", "text": instruction}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    n_example_slots = len(slots)
    q_kind, q_counts = query
    slots += [(q_kind, int(c)) for c in q_counts]
    messages.append({"role": "user", "content": _content(q_kind, len(q_counts)) + [{"type": "text", "text": prompt}]})

    text = extractor.postprocess_text(_expand(extractor, _render(extractor, messages, True), slots))
    query_char = 0
    if examples:
        head = _render(extractor, messages[:-1], False)
        head = extractor.postprocess_text(_expand(extractor, head, slots[:n_example_slots]))
        # templates append turns, so the examples' rendering is a prefix of the whole chat; if a template
        # rewrites earlier turns the query turn is taken to start at its stimulus (still after every example)
        query_char = len(head) if text.startswith(head) else -1

    enc = extractor.tokenizer(text, return_offsets_mapping=True)
    ids = torch.tensor(enc["input_ids"], dtype=torch.long)
    offsets = torch.tensor(enc["offset_mapping"], dtype=torch.long).reshape(-1, 2)
    token_ids = torch.tensor(sorted({extractor.image_token_id, *extractor.placeholder_token_ids()}))
    stimulus_all = torch.isin(ids, token_ids)
    n_total = sum(c for _, c in slots)
    n_query = sum(int(c) for c in q_counts)
    if int(stimulus_all.sum()) != n_total:
        raise ValueError(
            f"{extractor.model_id}: tokenizing the in-context chat gave {int(stimulus_all.sum())} stimulus tokens, "
            f"expected {n_total}; is every placeholder a single special token of the tokenizer?"
        )
    positions = stimulus_all.nonzero().flatten()
    first_query_stim = int(positions[n_total - n_query])
    stimulus = torch.zeros_like(stimulus_all)
    stimulus[positions[n_total - n_query:]] = True
    if query_char < 0:
        query_start = first_query_stim
    else:
        later = (offsets[:, 0] >= query_char).nonzero().flatten()
        query_start = int(later[0]) if later.numel() else first_query_stim
        query_start = min(query_start, first_query_stim)
    start = text.rfind(prompt)
    if start < 0:
        raise ValueError(f"the chat template of {extractor.model_id} altered the prompt text {prompt!r}.")
    end = start + len(prompt)
    prompt_mask = (offsets[:, 0] < end) & (offsets[:, 1] > start) & ~stimulus_all
    if not bool(prompt_mask.any()) or int(prompt_mask.nonzero()[0]) < query_start:
        raise ValueError(
            f"{extractor.model_id}: could not find the query instruction {prompt!r} in the query turn of the "
            "in-context chat; check that the chat template renders each turn's text verbatim."
        )
    return InContextSequence(ids, TokenMasks(stimulus=stimulus, prompt=prompt_mask), query_start, text)


# -------------------------------------------------------------- extraction
class _EncoderCache:
    """Modality-encoder output of each stimulus, computed once (bounded, least recently used out)."""

    def __init__(self, extractor, size: int):
        self.extractor = extractor
        self.size = max(1, int(size))
        self.items: OrderedDict[int, tuple] = OrderedDict()

    def get(self, key: int, prepared) -> tuple[dict, str, tuple[int, ...], torch.Tensor]:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        inputs, kind = self.extractor.process_stimulus(prepared)
        counts = tuple(int(c) for c in self.extractor.tokens_per_frame(inputs))
        dim = self.extractor.model.get_input_embeddings().embedding_dim
        embeds = self.extractor.encode_image(inputs)[0].reshape(-1, dim)
        if embeds.shape[0] != sum(counts):
            raise ValueError(f"{self.extractor.model_id}: the encoder gave {embeds.shape[0]} embeddings for "
                             f"{sum(counts)} stimulus tokens.")
        value = (inputs, kind, counts, embeds)
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_POSITION_KEYS = ("image_grid_thw", "video_grid_thw", "second_per_grid_ts")


def _merged_position_inputs(inputs: list[dict]) -> dict[str, torch.Tensor]:
    """The grid inputs of several stimuli in order (what position ids of a multi-stimulus chat read)."""
    out: dict[str, torch.Tensor] = {}
    for key in _POSITION_KEYS:
        parts = [inp[key] for inp in inputs if key in inp]
        if parts:
            out[key] = torch.cat(parts, dim=0)
    return out


@torch.inference_mode()
def _hidden(extractor, seq: InContextSequence, embeds: torch.Tensor, position_inputs, layers, component):
    """States (n_layers_sel, seq_len, dim) of one in-context chat from one language-model forward."""
    extractor.reset_state()
    ids = seq.ids[None]
    positions = extractor.position_ids(ids, position_inputs)
    with extractor.capture(component, layers) as states:
        out = extractor.language_model(
            inputs_embeds=extractor._embed(seq.ids, embeds)[None],
            position_ids=positions,
            use_cache=False,
            output_hidden_states=True,
        )
        result = states(out)
    extractor.reset_state()
    return result


@torch.inference_mode()
def _respond(extractor, seq: InContextSequence, embeds: torch.Tensor, position_inputs, gen: GenerationConfig):
    """``seq`` with the model's response appended (language model + head with a KV cache, as the reuse path).

    Decoding is set by ``gen`` alone (greedy or seeded top-k sampling), as in
    :meth:`VisionLanguageExtractor.extract`; stimulus placeholders are never picked.
    """
    extractor.reset_state()
    lm = extractor.language_model
    head = extractor.model.get_output_embeddings()
    eos = extractor.eos_token_ids()
    generator = extractor._generator(gen)
    positions = extractor.position_ids(seq.ids[None], position_inputs)
    out = lm(inputs_embeds=extractor._embed(seq.ids, embeds)[None], position_ids=positions, use_cache=True)
    logits = head(out.last_hidden_state[:, -1])
    next_pos = positions[..., -1:] + 1
    new: list[torch.Tensor] = []
    for step in range(gen.max_new_tokens):
        tok = extractor.next_tokens(logits, gen, [generator])
        new.append(tok)
        if int(tok) in eos or step == gen.max_new_tokens - 1:
            break
        out = lm(inputs_embeds=extractor._embed(tok[:, None], None), position_ids=next_pos + step,
                 past_key_values=out.past_key_values, use_cache=True)
        logits = head(out.last_hidden_state[:, -1])
    extractor.reset_state()
    full = extractor.with_response(seq, torch.cat(new) if new else torch.zeros(0, dtype=torch.long))
    return InContextSequence(full.ids, full.masks, seq.query_start, full.text)


def extract_in_context(
    extractor,
    stimuli: Sequence[Any],
    prompts: dict[str, str] | Sequence[str] | str,
    contexts: InContext | Sequence[InContext],
    layers: Sequence[int | float] | str = "all",
    *,
    pooling: str | None = None,
    component: str = "language",
    stimulus_ids: Sequence[str] | None = None,
    sampling_rate: int | None = None,
    generation: GenerationConfig | None = None,
    encoder_cache_size: int = 256,
    example_ids: Sequence[Sequence[str]] | None = None,
) -> dict[str, FeatureSet]:
    """Features of every query stimulus under every prompt, after its worked examples.

    Parameters
    ----------
    extractor : VisionLanguageExtractor
        Any multimodal adapter of :mod:`brainalign.features.hf_multimodal`.
    stimuli : sequence of n_stimuli query stimuli
        As for :meth:`VisionLanguageExtractor.extract`.
    prompts : dict name -> text, or list of texts
        The query instruction (and, unless an example says otherwise, every
        example's instruction).
    contexts : InContext, or sequence of n_stimuli InContext
        The examples before each query (one InContext = the same for all).
    layers : "all", ints (negative from the end) or floats in [0, 1]
    pooling : {"mean", "stimulus", "prompt", "last", "generated"}, optional
        Restricted to the query's tokens (see :data:`QUERY_POOLINGS`);
        default: the extractor's.
    component : {"language", "attention"}
    stimulus_ids : list of str, optional
    sampling_rate : int, optional
        For audio LLMs.
    generation : GenerationConfig, optional
        Decoding for ``pooling="generated"`` (default: the extractor's); the
        responses go in ``meta["generated_text"]``.
    encoder_cache_size : int
        Encoded stimuli kept for reuse as examples of later queries.
    example_ids : list (per query) of list of str, optional
        Recorded in ``meta["in_context"]["examples"]``.

    Returns
    -------
    dict prompt name -> FeatureSet with values (n_stimuli, n_layers, dim);
    ``meta["in_context"]`` holds k, the examples and per-query token counts.
    """
    from .hf_multimodal import VisionLanguageExtractor
    from .stimulus_inputs import check_prompts

    if not isinstance(extractor, VisionLanguageExtractor):
        raise ValueError(
            f"in-context prompts with stimuli need a chat model of brainalign.features.hf_multimodal; got "
            f"{type(extractor).__name__}. For text models use brainalign.controls.in_context_texts; InstructBLIP "
            "reads one image per query and takes no worked examples."
        )
    prompts = check_prompts(prompts)
    pooling = check_pooling(pooling or extractor.pooling)
    gen = generation or extractor.generation
    if component not in ("language", "attention"):
        raise ValueError(
            f"component={component!r}: in-context examples only change the language model's states; use "
            "'language' or 'attention' (the encoder and connector do not see the examples; read them with "
            "extractor.extract)."
        )
    # the caller's objects key the encoder cache (a stimulus shown as a query and as an example is encoded
    # once); holding them in a list keeps those keys valid for the whole call
    raw = list(stimuli) if isinstance(stimuli, np.ndarray) else stimuli
    queries = extractor.prepare_stimuli(raw, sampling_rate=sampling_rate)
    n = len(queries)
    if isinstance(contexts, InContext):
        contexts = [contexts] * n
    contexts = list(contexts)
    if len(contexts) != n or not all(isinstance(c, InContext) for c in contexts):
        raise ValueError(
            f"contexts must be one InContext or a list of {n} (one per stimulus); got {len(contexts)} "
            f"entries of types {sorted({type(c).__name__ for c in contexts})}."
        )
    stimulus_ids = [str(i) for i in range(n)] if stimulus_ids is None else [str(s) for s in stimulus_ids]
    if len(stimulus_ids) != n:
        raise ValueError(f"stimulus_ids has {len(stimulus_ids)} entries for {n} stimuli.")
    try:
        layer_idx = resolve_layers(layers, extractor.n_layers)
    except ValueError as err:
        raise ValueError(f"layers={layers!r} for the {component} component of {extractor.model_id}: {err}") from None
    if component == "attention":
        if layers == "all":
            layer_idx = [i for i in layer_idx if i > 0]
        elif 0 in layer_idx:
            raise ValueError(f"layers={layers!r}: the attention component has no layer 0 (embeddings); "
                             f"use block indices 1..{extractor.n_layers}.")

    cache = _EncoderCache(extractor, encoder_cache_size)
    prepared_examples: dict[int, Any] = {}

    def example_entry(ex: Example, where: str):
        key = id(ex.stimulus)
        if key not in prepared_examples:
            try:
                prepared_examples[key] = extractor.prepare_stimuli([ex.stimulus], sampling_rate=sampling_rate)[0]
            except ValueError as err:
                raise ValueError(f"{where}.stimulus: {err}") from None
        return cache.get(key, prepared_examples[key])

    names = list(prompts)
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    n_input, n_stimulus, n_pooled = [], [], {name: [] for name in names}
    texts: dict[str, list[str]] = {name: [] for name in names}
    for i, (query, ctx) in enumerate(zip(queries, contexts)):
        q_inputs, q_kind, q_counts, q_embeds = cache.get(id(raw[i]), query)
        ex_entries = [
            example_entry(ex, f"contexts[{i}].examples[{j}]") if ex.stimulus is not None else None
            for j, ex in enumerate(ctx.examples)
        ]
        shown = [e for e in ex_entries if e is not None]
        n_stimulus.append(int(sum(q_counts)))
        embeds = torch.cat([e[3] for e in shown] + [q_embeds], dim=0)
        position_inputs = _merged_position_inputs([e[0] for e in shown] + [q_inputs])
        for name in names:
            turns = [
                ((e[1], e[2]) if e is not None else None, ex.instruction or prompts[name], ex.answer)
                for ex, e in zip(ctx.examples, ex_entries)
            ]
            seq = tokenize_in_context(extractor, prompts[name], (q_kind, q_counts), turns)
            if name == names[0]:
                n_input.append(int(seq.ids.numel()))
            if pooling == "generated":
                seq = _respond(extractor, seq, embeds, position_inputs, gen)
                texts[name].append(seq.text)
            hidden = _hidden(extractor, seq, embeds, position_inputs, layer_idx, component)
            q = seq.query_start
            gen_mask = seq.masks.generated[q:] if seq.masks.generated is not None else None
            masks = TokenMasks(stimulus=seq.masks.stimulus[q:], prompt=seq.masks.prompt[q:], generated=gen_mask)
            values[name].append(pool_tokens(hidden[:, q:], masks, pooling).cpu().numpy())
            n_pooled[name].append({"mean": masks.n_input, "stimulus": int(masks.stimulus.sum()),
                                   "prompt": int(masks.prompt.sum()), "last": 1,
                                   "generated": int(gen_mask.sum()) if gen_mask is not None else 0}[pooling])

    ks = sorted({c.k for c in contexts})
    out = {}
    for name in names:
        meta = {
            **extractor.meta,
            "model_type": extractor.model_type,
            "component": component,
            "pooling": pooling,
            "pooling_description": QUERY_POOLINGS[pooling],
            "prompt_text": prompts[name],
            "n_stimulus_tokens": n_stimulus,
            "in_context": {
                "k": ks[0] if len(ks) == 1 else ks,
                "n_examples_with_stimulus": [sum(e.stimulus is not None for e in c.examples) for c in contexts],
                "examples": [list(e) for e in example_ids] if example_ids is not None else None,
                "answers": [[e.answer for e in c.examples] for c in contexts],
                "n_input_tokens": n_input,
                "n_pooled_tokens": n_pooled[name],
            },
        }
        if pooling == "generated":
            meta["generation"] = gen.as_dict()
            meta["generated_text"] = texts[name]
        out[name] = FeatureSet(
            values=np.stack(values[name]).astype(np.float32),
            stimulus_ids=list(stimulus_ids),
            layers=layer_idx,
            model=extractor.model_id,
            prompt=name,
            meta=meta,
        )
    return out


def in_context_features(
    extractor,
    stimuli: Sequence[Any],
    prompts: dict[str, str] | Sequence[str] | str,
    answers: Sequence[str],
    *,
    k: int,
    with_stimuli: bool = True,
    seed: int = 0,
    layers: Sequence[int | float] | str = "all",
    pooling: str | None = None,
    component: str = "language",
    stimulus_ids: Sequence[str] | None = None,
    pool: Sequence[int] | None = None,
    sampling_rate: int | None = None,
    generation: GenerationConfig | None = None,
) -> dict[str, FeatureSet]:
    """In-context features of a study's stimuli: each query after k other stimuli of the study, worked.

    For every query the ``k`` examples are drawn (seeded by ``seed`` and the
    query's id, never the query itself nor a stimulus with the same content)
    from the study's stimuli; each example is shown with its stimulus
    (``with_stimuli=True``) or as text only, followed by the prompt and its
    worked answer ``answers[j]``. Only the query's tokens are pooled.

    Parameters
    ----------
    extractor : VisionLanguageExtractor
    stimuli : sequence of n_stimuli stimuli (queries and candidate examples)
    prompts : dict name -> text, or list of texts
    answers : sequence of n_stimuli str
        Worked answer of each stimulus when it is an example (its label,
        caption...). Must be non-empty.
    k : int
        Examples per query; k = 0 gives the plain features.
    with_stimuli : bool
    seed : int
    layers, pooling, component, sampling_rate, generation
        As for :func:`extract_in_context`.
    stimulus_ids : list of str, optional
        Unique ids; default "0", "1", ...
    pool : sequence of int or of str, optional
        Indices (or ids) of the stimuli allowed as examples (default: all).

    Returns
    -------
    dict prompt name -> FeatureSet (n_stimuli, n_layers, dim); the chosen
    examples' ids are in ``meta["in_context"]["examples"]``.

    Raises
    ------
    ValueError
        If k exceeds the other stimuli available to a query, an answer is
        empty, or lengths disagree.
    """
    from .stimulus_inputs import stimulus_digest

    if isinstance(stimuli, np.ndarray):
        stimuli = list(stimuli)  # one object per stimulus, shared by its query and example roles
    n = len(stimuli)
    stimulus_ids = [str(i) for i in range(n)] if stimulus_ids is None else [str(s) for s in stimulus_ids]
    if len(stimulus_ids) != n:
        raise ValueError(f"stimulus_ids has {len(stimulus_ids)} entries for {n} stimuli.")
    if len(answers) != n:
        raise ValueError(f"answers has {len(answers)} entries for {n} stimuli; give one answer per stimulus.")
    if pool is not None:
        pool = list(pool)
        if any(isinstance(p, str) for p in pool):
            where = {s: j for j, s in enumerate(stimulus_ids)}
            unknown = [p for p in pool if str(p) not in where]
            if unknown:
                raise ValueError(f"pool names {unknown[:5]} are not stimulus ids of this study "
                                 f"(e.g. {stimulus_ids[:3]}); list example stimuli by their ids.")
            pool = [where[str(p)] for p in pool]
    digests = [stimulus_digest(s, sampling_rate) for s in stimuli]
    chosen = choose_examples(stimulus_ids, k, seed, pool=pool, identity=digests)
    contexts = build_contexts(stimuli, answers, chosen, with_stimuli=with_stimuli)
    out = extract_in_context(
        extractor, stimuli, prompts, contexts, layers, pooling=pooling, component=component,
        stimulus_ids=stimulus_ids, sampling_rate=sampling_rate, generation=generation,
        example_ids=[[stimulus_ids[j] for j in ex] for ex in chosen],
    )
    for fs in out.values():
        fs.meta["in_context"].update(k=int(k), with_stimuli=bool(with_stimuli), seed=int(seed))
    return out


def in_context_from_spec(
    extractor,
    spec,
    stimuli: Sequence[Any],
    stimulus_names: Sequence[str],
    prompts: dict[str, str],
    *,
    seed: int,
    layers: Sequence[int | float] | str = "all",
    pooling: str | None = None,
    component: str = "language",
    sampling_rate: int | None = None,
    generation: GenerationConfig | None = None,
) -> dict[str, FeatureSet]:
    """In-context features as ``analysis.controls.in_context`` asks (the pipeline's entry point).

    Parameters
    ----------
    extractor : VisionLanguageExtractor
    spec : brainalign.config.InContextSpec
        ``k``; ``with_stimuli`` (show each example's stimulus or text only);
        ``answer`` (worked-answer template, ``{stimulus}`` = the example's
        name); ``examples`` (names allowed as examples; null = all others).
    stimuli : sequence of n_stimuli stimuli, in the order of ``stimulus_names``
    stimulus_names : sequence of n_stimuli unique str
        The study's stimulus names (``StudyData.stimuli``); they fill the
        answer template and are the FeatureSets' stimulus ids.
    prompts : dict name -> instruction
        The prompts to control (the unprompted one excluded by the caller).
    seed : int
        The experiment seed (examples drawn per query from it and the query's name).
    layers, pooling, component, sampling_rate, generation
        As for :func:`extract_in_context`.

    Returns
    -------
    dict prompt name -> FeatureSet (n_stimuli, n_layers, dim); name the
    control space ``f"{prompt}~icl{spec.k}"`` as the text path does.
    """
    names = [str(s) for s in stimulus_names]
    answers = [spec.answer.format(stimulus=s) for s in names]
    return in_context_features(
        extractor, stimuli, prompts, answers, k=int(spec.k), with_stimuli=bool(spec.with_stimuli), seed=int(seed),
        layers=layers, pooling=pooling, component=component, stimulus_ids=names,
        pool=list(spec.examples) if spec.examples is not None else None, sampling_rate=sampling_rate,
        generation=generation,
    )
