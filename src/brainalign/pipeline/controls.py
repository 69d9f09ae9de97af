"""Controls a reviewer asks for, fitted through the same pipeline and reported beside their effects.

Every claim "model/prompt A aligns better than B" gets a "compared with what?":

- **prompt controls** (one fixed layer): the *scrambled* version of each prompt
  (the same words, hence the same tokens, in a seeded random order), a
  *neutral* prompt, and the unprompted reference (the empty instruction);
- **feature controls**: *stimulus-shuffled* model features (the stimulus →
  feature assignment permuted within each run, seeded) and *Gaussian* random
  features of the same dimensionality (one random vector per stimulus);
- **label control**: the category-shuffled baseline (``baseline/category_shuffled``);
- **in-context prompts** (the video-audio study's ICL baseline): k worked examples (the
  same prompt filled with other stimuli) before the query; the model reads
  them, pooling leaves their tokens out;
- **untrained model**: a model entry with ``weights: random`` is paired with the
  pretrained entry of the same source.

:func:`control_spaces` builds the control feature spaces and the list of
(effect, control) pairs; :func:`controls_table` tests every pair over
held-out runs (paired Wilcoxon and t, as in
:func:`brainalign.analysis.summary.paired_test`).
"""
from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from brainalign._utils.errors import ConfigError
from brainalign.analysis.summary import paired_test
from brainalign.timing.spaces import LAYER_PLACEHOLDER, space_name

if TYPE_CHECKING:
    from brainalign.config import Experiment
    from brainalign.features.store import FeatureStore
    from brainalign.study.data import StudyData
    from brainalign.timing.spaces import FeatureSpace

__all__ = [
    "PLACEHOLDER",
    "scramble_prompt",
    "control_prompts",
    "in_context_texts",
    "stimulus_shuffled_features",
    "gaussian_features",
    "ControlPlan",
    "control_plan",
    "control_spaces",
    "control_pairs_for_models",
    "controls_table",
]

PLACEHOLDER = "{stimulus}"
CONTROL_TABLE_COLUMNS = [
    "effect", "control", "control_kind", "model", "prompt", "layer", "mean_effect", "mean_control", "mean_diff",
    "sem_diff", "n_better", "n", "cohen_dz", "p", "p_t", "survives", "tokens_effect", "tokens_control",
]


def _rng(seed: int, *names: str) -> np.random.Generator:
    """A generator fixed by the experiment seed and the names of what it shuffles (stable across runs)."""
    return np.random.default_rng([int(seed)] + [zlib.crc32(n.encode()) for n in names])


def scramble_prompt(template: str, seed: int = 0, name: str = "") -> str:
    """The same words as ``template`` in a seeded random order (a ``{stimulus}`` placeholder moves too).

    Words are whitespace-separated and keep their punctuation, so a WordPiece
    tokenizer sees the same token multiset. The order always differs from the
    original when the template has two or more distinct words.

    Parameters
    ----------
    template : str
        Contains ``{stimulus}`` at most once (image/video prompts have none).
    seed : int
    name : str
        Mixed into the seed so different prompts get different orders.

    Raises
    ------
    ValueError
        If the placeholder is missing or repeated, or the template has a single word.
    """
    if template.count(PLACEHOLDER) > 1:
        raise ValueError(f"template {template!r} contains '{PLACEHOLDER}' more than once; it cannot be scrambled.")
    words = template.split()
    if len(set(words)) < 2:
        raise ValueError(f"template {template!r} has fewer than two distinct words; there is no order to scramble.")
    rng = _rng(seed, "scramble", name, template)
    for _ in range(1000):
        order = rng.permutation(len(words))
        out = [words[i] for i in order]
        if out != words:
            return " ".join(out)
    raise RuntimeError(f"could not scramble {template!r}")  # pragma: no cover (probability ~0)


def control_prompts(
    prompts: dict[str, str], unprompted: str | None, kinds: Sequence[str], neutral: str, seed: int
) -> dict[str, tuple[str, str | None, str]]:
    """Control templates: ``{name: (template, prompt it controls or None, kind)}``.

    Scrambled controls are made for every prompt except ``unprompted``; the
    neutral control (name ``~neutral``) controls every such prompt.
    """
    out: dict[str, tuple[str, str | None, str]] = {}
    for kind in kinds:
        if kind == "scrambled":
            for name, tpl in prompts.items():
                if name != unprompted:
                    out[f"{name}~scrambled"] = (scramble_prompt(tpl, seed, name), name, "scrambled")
        elif kind == "neutral":
            out["~neutral"] = (neutral, None, "neutral")
        else:
            raise ValueError(f"unknown prompt control {kind!r}; use 'scrambled' or 'neutral'.")
    return out


def in_context_texts(
    template: str, stimuli: Sequence[str], k: int, examples: Sequence[str] | None = None, separator: str = " "
) -> tuple[list[str], list[int]]:
    """Texts with ``k`` worked examples before each query, and where each query starts.

    Parameters
    ----------
    template : str
        Prompt template with ``{stimulus}``; examples and query both use it.
    stimuli : sequence of str, length n
    k : int
    examples : sequence of str, optional
        Example stimulus names. Default: for stimulus i the next ``k`` other
        stimuli of the list (cyclically), so no query is its own example.
    separator : str

    Returns
    -------
    texts : list of str, length n
    query_start : list of int, length n
        Character offset of the query in each text (pass as ``pool_from``).
    """
    n = len(stimuli)
    if examples is None:
        if k > n - 1:
            raise ConfigError(f"k={k} in-context examples need at least k+1={k + 1} stimuli, got {n}; "
                             "lower k or list analysis.controls.in_context.examples.")
        chosen = [[stimuli[(i + j) % n] for j in range(1, k + 1)] for i in range(n)]
    else:
        if len(examples) < k:
            raise ConfigError(f"in_context.examples has {len(examples)} names but k={k}; give at least k.")
        chosen = [list(examples[:k])] * n
    texts, starts = [], []
    for stim, ex in zip(stimuli, chosen):
        prefix = "".join(template.format(stimulus=e) + separator for e in ex)
        texts.append(prefix + template.format(stimulus=stim))
        starts.append(len(prefix))
    return texts, starts


def stimulus_shuffled_features(
    design: np.ndarray, features: np.ndarray, runs: np.ndarray, seed: int, name: str = ""
) -> np.ndarray:
    """TR-wise features with the stimulus → feature assignment permuted within each run.

    Within a run every stimulus keeps one (wrong) feature vector, so timing and
    feature statistics are intact but the mapping learnt on training runs does
    not transfer; each run gets its own non-identity permutation.

    Parameters
    ----------
    design : ndarray or scipy.sparse matrix of shape (n_trs, n_stimuli)
    features : ndarray of shape (n_stimuli, dim)
    runs : ndarray of shape (n_trs,)
    seed : int

    Returns
    -------
    ndarray of shape (n_trs, dim), float32
    """
    from scipy import sparse

    design = design.tocsr() if sparse.issparse(design) else np.asarray(design)  # item data: a sparse one-hot design
    features = np.asarray(features)
    runs = np.asarray(runs)
    if design.ndim != 2 or features.ndim != 2 or design.shape[1] != features.shape[0]:
        raise ValueError(f"design {design.shape} must be (n_trs, n_stimuli) and features {features.shape} "
                         "(n_stimuli, dim) with the same n_stimuli.")
    if runs.shape != (design.shape[0],):
        raise ValueError(f"runs has shape {runs.shape}; expected ({design.shape[0]},), one run id per TR.")
    n = features.shape[0]
    rng = _rng(seed, "stimulus_shuffled", name)
    X = np.empty((design.shape[0], features.shape[1]), dtype=np.float32)
    for run in np.unique(runs):
        perm = rng.permutation(n)
        while n > 1 and np.array_equal(perm, np.arange(n)):
            perm = rng.permutation(n)
        sel = np.flatnonzero(runs == run)
        X[sel] = np.asarray(design[sel] @ features[perm])
    return X


def gaussian_features(n_stimuli: int, dim: int, seed: int, name: str = "") -> np.ndarray:
    """One standard-normal random vector per stimulus, shape (n_stimuli, dim), float32 (seeded).

    With fewer stimuli than dimensions this is a random *code* of the
    stimuli: it carries the stimulus identity and nothing else, so model
    features must beat it to claim more than identity.
    """
    return _rng(seed, "gaussian", name).standard_normal((n_stimuli, dim)).astype(np.float32)


def _pair(effect, control, kind, model="", prompt="", layer=-1, tokens_effect=np.nan, tokens_control=np.nan):
    return dict(effect=effect, control=control, control_kind=kind, model=model, prompt=prompt, layer=layer,
                tokens_effect=tokens_effect, tokens_control=tokens_control)


def control_pairs_for_models(exp: Experiment, spaces: Sequence[FeatureSpace]) -> list[dict]:
    """Pairs that need no extra space: untrained vs pretrained models and category vs its shuffles."""
    names = {sp.name for sp in spaces}
    pairs = []
    for rnd in (m for m in exp.models if m.weights == "random"):
        for pre in (m for m in exp.models if m.weights == "pretrained" and m.source == rnd.source):
            for sp in spaces:
                if sp.kind == "model" and sp.model == pre.name:
                    ctl = space_name(rnd.name, sp.prompt, sp.layer)
                    if ctl in names:
                        pairs.append(_pair(sp.name, ctl, "untrained", pre.name, sp.prompt, sp.layer))
    if "baseline/category" in names:
        for ctl, kind in (("baseline/category_shuffled", "label_shuffled"), ("baseline/onoff", "onoff")):
            if ctl in names:
                pairs.append(_pair("baseline/category", ctl, kind))
    return pairs


@dataclass(frozen=True)
class ControlPlan:
    """What :func:`control_spaces` adds for one model, and how each space is named — known from the config and
    the model's depth alone, so ``validate`` checks names against the same plan the run follows."""

    model: str
    layer: int | str  # the one control layer (absolute index; LAYER_PLACEHOLDER when the depth is not known)
    n_layers: int | None  # blocks of the model (depth = layer / n_layers); None when not known
    unprompted: str | None  # the empty-instruction reference when the model reads it, else None
    templates: dict  # control prompt name -> (template, prompt it controls or None, kind): control_prompts
    effect_prompts: tuple[str, ...]  # the model's prompts other than the unprompted one
    feature_prompts: tuple[str, ...]  # prompts whose features get the feature controls
    effects_added: tuple[str, ...]  # prompts whose spaces at `layer` are added (the layer is not a fitted one)
    in_context_k: int | None
    features: tuple[str, ...]  # feature control kinds

    def effect(self, prompt: str) -> str:
        """``<model>/<prompt>/L<layer>`` at the control layer (effects, prompt and in-context controls)."""
        return space_name(self.model, prompt, self.layer)

    def in_context_prompt(self, prompt: str) -> str:
        return f"{prompt}~icl{self.in_context_k}"

    def feature_control(self, prompt: str, kind: str, dim: int | None) -> str:
        """The space of feature control ``kind`` of ``prompt``; a Gaussian space is named by its dimension
        (``None``: unknown before the features exist; the name then holds ``<dim>``)."""
        if kind == "stimulus_shuffled":
            return f"{self.effect(prompt)}~stimulus_shuffled"
        if kind == "gaussian":
            return space_name(self.model, f"~gaussian-{'<dim>' if dim is None else int(dim)}d", self.layer)
        raise ValueError(f"unknown feature control {kind!r}.")  # pragma: no cover (config validation)

    def space_names(self, dim: int | None = None) -> list[str]:
        """Every space this plan adds, in no particular order (``dim``: the model's feature dimension)."""
        out = [self.effect(p) for p in self.effects_added] + [self.effect(c) for c in self.templates]
        if self.in_context_k is not None:
            out += [self.effect(self.in_context_prompt(p)) for p in self.effect_prompts]
        out += [self.feature_control(p, k, dim) for p in self.feature_prompts for k in self.features]
        return list(dict.fromkeys(out))


def control_plan(exp: Experiment, spec, n_layers: int | None, fitted_layers: Sequence[int]) -> ControlPlan | None:
    """The :class:`ControlPlan` of model ``spec`` (None when ``analysis.controls`` is off or nothing instructs the
    model: baseline models, ``prompts: none``).

    ``n_layers`` None (a check before the model's depth is known): the names hold ``<layer>`` and the effects
    that the control layer adds are not listed (they are ``<model>/<prompt>/L<layer>`` spaces either way).

    Raises
    ------
    ValueError
        ``analysis.controls.layer`` outside the model's depth; a prompt with fewer than two distinct words
        asked to be scrambled (both from :func:`control_prompts` / ``resolve_layers``).
    """
    from brainalign.features.base import resolve_layers

    ctl = exp.analysis.controls
    if ctl is None or spec.kind == "baseline" or spec.prompts == "none":
        return None
    if ctl.models is not None and spec.name not in ctl.models:  # analysis.controls.models leaves it out
        return None
    prompts = exp.prompts_of(spec)
    unprompted = exp.analysis.unprompted if exp.analysis.unprompted in prompts else None
    effect_prompts = tuple(p for p in prompts if p != exp.analysis.unprompted)
    feature_prompts = tuple(p for p in (ctl.feature_prompts if ctl.feature_prompts is not None else prompts)
                            if p in prompts)
    layer = resolve_layers([ctl.layer], n_layers)[0] if n_layers is not None else LAYER_PLACEHOLDER
    needed = set(effect_prompts) | set(feature_prompts) | ({unprompted} if unprompted is not None else set())
    added = tuple(sorted(needed)) if n_layers is not None and layer not in fitted_layers else ()
    return ControlPlan(
        model=spec.name, layer=layer, n_layers=n_layers, unprompted=unprompted,
        templates=control_prompts(prompts, exp.analysis.unprompted, ctl.prompts, ctl.neutral_prompt, exp.seed),
        effect_prompts=effect_prompts, feature_prompts=feature_prompts, effects_added=added,
        in_context_k=ctl.in_context.k if ctl.in_context is not None else None, features=tuple(ctl.features))


def _features_at(extractor, texts: list[str], layer: int, store: FeatureStore,
                 pool_from: list[int] | None = None) -> np.ndarray:
    return np.asarray(extractor.embed_cached(texts, [layer], store, pool_from))[:, 0, :]


def control_spaces(
    exp: Experiment,
    data: StudyData,
    features: dict[str, dict[str, np.ndarray]],
    model_meta: dict,
    store: FeatureStore,
    extractor_for=None,
    base_dir=None,
) -> tuple[list[FeatureSpace], list[dict]]:
    """Control feature spaces at ``analysis.controls.layer`` and the (effect, control) pairs they answer.

    Parameters
    ----------
    exp : Experiment
        ``analysis.controls`` says which controls; may be None (then only the
        untrained-model and label pairs are returned).
    data : StudyData
    features : dict model → prompt → ndarray (n_stimuli, n_layers, dim)
        As returned by :func:`brainalign.pipeline.runner.model_features`.
    model_meta : dict model → {layers, n_layers, ...}; token counts of the control prompts are added to it.
    store : FeatureStore
    extractor_for : callable ModelSpec → TextExtractor, optional
        Default: the text extractor of a text model, a :class:`~brainalign.features.models.MultimodalReader` of a
        multimodal one (baseline models have no prompts and get no controls).
    base_dir : Path, optional
        Folder of the config (relative model folders).

    Returns
    -------
    spaces : list of FeatureSpace (kind ``"control"``)
    pairs : list of dict (effect, control, control_kind, model, prompt, layer, tokens_effect, tokens_control)
    """
    from brainalign.features.models import make_extractor
    from brainalign.timing.spaces import FeatureSpace

    def default_reader(spec):
        if spec.kind == "text":
            return make_extractor(spec)
        from brainalign.features.models import MultimodalReader

        return MultimodalReader(spec, exp.stimuli, data, base_dir)

    extractor_for = extractor_for or default_reader
    ctl = exp.analysis.controls
    spaces: list[FeatureSpace] = []
    pairs: list[dict] = []
    if ctl is None:
        return spaces, pairs
    runs = data.recording.runs
    names = data.names  # what '{stimulus}' becomes (the stimulus' text, or the format's name: "image", "video")
    for spec in exp.models:
        if spec.kind == "baseline" or spec.prompts == "none":  # nothing instructs these models: nothing to control
            continue
        meta = model_meta[spec.name]
        plan = control_plan(exp, spec, meta["n_layers"], meta["layers"])
        if plan is None:  # left out of analysis.controls.models
            continue
        prompts, unprompted, layer, n_layers = exp.prompts_of(spec), plan.unprompted, plan.layer, plan.n_layers
        templates, effect_prompts = plan.templates, plan.effect_prompts
        ex = extractor_for(spec)

        def at_layer(pname: str, texts: list[str]) -> np.ndarray:
            if pname in features.get(spec.name, {}) and layer in meta["layers"]:
                return features[spec.name][pname][:, meta["layers"].index(layer), :]
            return _features_at(ex, texts, layer, store)

        name = plan.effect

        def space(sname: str, make, dim: int, prompt: str) -> None:
            # lazy: the TR-wise features are made from the stimulus features when a fit needs them
            spaces.append(FeatureSpace(name=sname, source=make, dim=dim, kind="control", model=spec.name,
                                       prompt=prompt, layer=layer, depth=layer / n_layers))

        tokens = {}
        for pname, tpl in prompts.items():
            texts = [tpl.format(stimulus=s) for s in names]
            tokens[pname] = meta.get("n_tokens", {}).get(pname) or ex.count_tokens(texts)
        # effects at the control layer that are not fitted yet (layer outside the model's configured layers)
        for pname in plan.effects_added:
            texts = [exp.prompts[pname].format(stimulus=s) for s in names]
            F = at_layer(pname, texts)
            spaces.append(FeatureSpace(name=name(pname), source=_times(data.design, F), dim=F.shape[1], kind="model",
                                       model=spec.name, prompt=pname, layer=layer, depth=layer / n_layers))
        # prompt controls
        for cname, (tpl, of, kind) in templates.items():
            texts = [tpl.format(stimulus=s) for s in names]
            F = _features_at(ex, texts, layer, store)
            space(name(cname), _times(data.design, F), F.shape[1], cname)
            tokens[cname] = ex.count_tokens(texts)
            meta.setdefault("texts", {})[cname] = texts
            meta.setdefault("n_tokens", {})[cname] = tokens[cname]
            for eff in ([of] if of is not None else effect_prompts):
                pairs.append(_pair(name(eff), name(cname), kind, spec.name, eff, layer,
                                   float(np.mean(tokens[eff])), float(np.mean(tokens[cname]))))
                _check_tokens(spec.name, eff, cname, tokens[eff], tokens[cname], ctl.max_token_difference)
        if ctl.in_context is not None:
            icl = ctl.in_context
            multimodal = hasattr(ex, "in_context")
            if multimodal:  # k examples (with their stimuli when icl.with_stimuli) before each query
                icl_feats = ex.in_context(icl, {e: exp.prompts[e].format(stimulus=names[0]) for e in effect_prompts},
                                          exp.seed, layer, store)
            for eff in effect_prompts:
                cname = plan.in_context_prompt(eff)
                if multimodal:
                    texts, F = [exp.prompts[eff].format(stimulus=s) for s in names], icl_feats[eff]
                else:
                    texts, starts = in_context_texts(exp.prompts[eff], data.stimuli, icl.k, icl.examples, icl.separator)
                    F = _features_at(ex, texts, layer, store, pool_from=starts)
                space(name(cname), _times(data.design, F), F.shape[1], cname)
                tokens[cname] = ex.count_tokens(texts)
                meta.setdefault("texts", {})[cname] = texts
                meta.setdefault("n_tokens", {})[cname] = tokens[cname]
                # the pooled query is the same text; the context is longer by design (no length warning)
                pairs.append(_pair(name(eff), name(cname), "in_context", spec.name, eff, layer,
                                   float(np.mean(tokens[eff])), float(np.mean(tokens[cname]))))
        if unprompted is not None:
            for eff in effect_prompts:
                pairs.append(_pair(name(eff), name(unprompted), "empty_instruction", spec.name, eff, layer,
                                   float(np.mean(tokens[eff])), float(np.mean(tokens[unprompted]))))
        # feature controls
        for pname in plan.feature_prompts:
            texts = [exp.prompts[pname].format(stimulus=s) for s in names]
            F = at_layer(pname, texts)
            for kind in plan.features:
                cname = plan.feature_control(pname, kind, F.shape[1])
                if kind == "stimulus_shuffled":
                    space(cname, partial(stimulus_shuffled_features, data.design, F, runs, exp.seed, cname), F.shape[1],
                          pname)
                elif kind == "gaussian":
                    if cname not in {s.name for s in spaces}:
                        G = partial(gaussian_features, F.shape[0], F.shape[1], exp.seed, cname)
                        space(cname, lambda design=data.design, G=G: design @ G(), F.shape[1], "~gaussian")
                pairs.append(_pair(name(pname), cname, kind, spec.name, pname, layer))
    return spaces, pairs


def _times(design: np.ndarray, F: np.ndarray):
    """``() -> design @ F``: TR-wise features from (n_stimuli, dim) stimulus features, made when needed."""
    return lambda: np.asarray(design @ np.asarray(F))


def _check_tokens(model: str, a: str, b: str, ta: Sequence[int], tb: Sequence[int], tolerance: int) -> None:
    diff = int(np.max(np.abs(np.asarray(ta) - np.asarray(tb)))) if len(ta) else 0
    if diff > tolerance:
        warnings.warn(
            f"{model}: prompt '{a}' and its control '{b}' differ by up to {diff} tokens (> {tolerance}); "
            "a difference between them may reflect length rather than content. Length-match them "
            "(rephrase) or raise analysis.controls.max_token_difference.",
            stacklevel=3,
        )


def controls_table(run_scores: pd.DataFrame, pairs: Sequence[dict], metric: str = "mean_r",
                   alpha: float = 0.05) -> pd.DataFrame:
    """Each effect beside its control, paired over held-out runs.

    Parameters
    ----------
    run_scores : DataFrame (space, run, <metric>, ...)
    pairs : sequence of dict with at least ``effect`` and ``control`` (space names)
    metric : str
    alpha : float
        ``survives`` is True when the effect beats its control on average with paired Wilcoxon p < alpha.

    Returns
    -------
    DataFrame with one row per pair whose spaces were both fitted; columns
    effect, control, control_kind, model, prompt, layer, mean_effect,
    mean_control, mean_diff (effect − control), sem_diff, n_better, n,
    cohen_dz, p (two-sided Wilcoxon signed-rank), p_t, survives,
    tokens_effect, tokens_control.
    """
    wide = run_scores.pivot(index="run", columns="space", values=metric)
    rows = []
    for pair in pairs:
        if pair["effect"] not in wide or pair["control"] not in wide:
            continue
        a, b = wide[pair["effect"]].to_numpy(), wide[pair["control"]].to_numpy()
        ok = np.isfinite(a) & np.isfinite(b)
        res = paired_test(a[ok], b[ok])
        row = {k: np.nan for k in CONTROL_TABLE_COLUMNS}
        row.update({k: v for k, v in pair.items() if k in CONTROL_TABLE_COLUMNS})
        row.update(mean_effect=float(a[ok].mean()), mean_control=float(b[ok].mean()), mean_diff=res["mean_diff"],
                   sem_diff=res["sem_diff"], n_better=res["n_better"], n=res["n"], cohen_dz=res["cohen_dz"],
                   p=res["p_wilcoxon"], p_t=res["p_t"])
        row["survives"] = bool(res["mean_diff"] > 0 and np.isfinite(res["p_wilcoxon"]) and res["p_wilcoxon"] < alpha)
        rows.append(row)
    return pd.DataFrame(rows, columns=CONTROL_TABLE_COLUMNS)
