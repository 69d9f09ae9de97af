"""In-context prompts for the multimodal adapters: k worked examples before the query.

The video-audio study (Oota et al., 2025) compared instruction-tuned models with in-context-learning (ICL)
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

Here: the examples (:class:`Example`, :class:`InContext`), their seeded
choice and the tokenization of the chat; the extraction is in
:mod:`brainalign.features.in_context_extract`. Entry points:

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
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .pooling import TokenMasks

__all__ = [
    "Example",
    "InContext",
    "InContextSequence",
    "choose_examples",
    "build_contexts",
    "tokenize_in_context",
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
