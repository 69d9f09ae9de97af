"""Features of in-context prompts (:mod:`brainalign.features.in_context`): encode each stimulus once, run the
language model once per (query, prompt) on the scattered embeddings, pool the query's tokens.

Entry points: :func:`in_context_from_spec` (the pipeline's ``analysis.controls.in_context``),
:func:`in_context_features` (seeded examples from the study) and :func:`extract_in_context` (explicit examples).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
import torch

from .hf_compat import cache_kwarg, output_cache
from .base import FeatureSet, stimulus_id_list
from .in_context import (QUERY_POOLINGS, Example, InContext, InContextSequence, build_contexts, choose_examples,
                         tokenize_in_context)
from .pooling import GenerationConfig, TokenMasks, check_pooling, pool_tokens

__all__ = ["extract_in_context", "in_context_features", "in_context_from_spec"]


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
            inputs_embeds=extractor.embed(seq.ids, embeds)[None],
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
    generator = extractor.seeded_generator(gen)
    positions = extractor.position_ids(seq.ids[None], position_inputs)
    out = lm(inputs_embeds=extractor.embed(seq.ids, embeds)[None], position_ids=positions, use_cache=True)
    logits = head(out.last_hidden_state[:, -1])
    next_pos = positions[..., -1:] + 1
    new: list[torch.Tensor] = []
    for step in range(gen.max_new_tokens):
        tok = extractor.next_tokens(logits, gen, [generator])
        new.append(tok)
        if int(tok) in eos or step == gen.max_new_tokens - 1:
            break
        out = lm(inputs_embeds=extractor.embed(tok[:, None], None), position_ids=next_pos + step,
                 **cache_kwarg(output_cache(out)), use_cache=True)
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
    from brainalign.stimuli.inputs import check_prompts

    if not isinstance(extractor, VisionLanguageExtractor) or not extractor.takes_in_context_examples:
        raise ValueError(
            f"in-context prompts with stimuli need a chat model of brainalign.features.hf_multimodal; got "
            f"{type(extractor).__name__}. For text models use brainalign.pipeline.controls.in_context_texts; InstructBLIP "
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
    stimulus_ids = stimulus_id_list(stimulus_ids, n)
    layer_idx = extractor.component_layers(layers, component)

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
    from brainalign.stimuli.inputs import stimulus_digest

    if isinstance(stimuli, np.ndarray):
        stimuli = list(stimuli)  # one object per stimulus, shared by its query and example roles
    n = len(stimuli)
    stimulus_ids = stimulus_id_list(stimulus_ids, n)
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
