"""Typed experiment configuration, loaded from YAML.

One :class:`Experiment` names the brain data, the stimuli, the models ×
prompts × layers, the timing, the encoding and the analyses (the brain and
stimulus sections are in :mod:`brainalign.config.data`, the analysis options
in :mod:`brainalign.config.analysis`). Every model
forbids unknown keys, so a misspelt key fails at load time with its dotted
path and the closest valid name.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, Field, PositiveFloat, ValidationError, field_validator, model_validator

from brainalign._utils.errors import ConfigError
from brainalign.config._base import BUILTIN_PREFIX, StrictModel, resolve_path
from brainalign.config.analysis import ArmSpec, CeilingSpec, CouplingSpec, EquivalenceSpec, check_extra_analyses
from brainalign.config.data import (BRAIN_FORMATS, STIMULUS_FORMATS, BrainSpec, GameplayStimuli, ImageStimuli,
                                    MovieClipStimuli, RoiSpec, Stimuli, StimulusSpec, TextItemStimuli)

__all__ = [
    "BrainSpec",
    "RoiSpec",
    "StimulusSpec",
    "ModelSpec",
    "RegressorOptions",
    "GameplayStimuli",
    "TimingSpec",
    "EncodingSpec",
    "AnalysisSpec",
    "PartitionSpec",
    "ControlSpec",
    "InContextSpec",
    "Experiment",
    "ConfigError",
    "load_config",
    "apply_overrides",
    "resolve_path",
    "BUILTIN_PREFIX",
]



class RegressorOptions(StrictModel):
    """``options`` of a ``baseline: bson_regressors`` model: which rows of a ``.bson`` file (ds004323's EMPA /
    DDQN regressors) belong to each BOLD run, and when each row happened.

    The dataset does not document the regressors' fields, so the config names them (list a file's fields with
    :func:`brainalign.features.bson_reader.describe_documents`). Every row reaches the TR grid through the
    frames shown (the study's design): a frame takes the row of the TR it is shown in (``time_unit: tr``) or the
    last row at or before its timestamp (``ms``/``s``), and each TR averages its frames like every other space.
    """

    path: str = Field(description="The .bson file, relative to brain.data_root (e.g. "
                      "ds004323/behavior/dump/<db>/dqn_regressors_25M.bson, from untarring behavior/dump.tar.gz).")
    field: str = Field(min_length=1, description="Numeric field of each document holding one row, a list of "
                       "equal-length rows or a Julia array ('regs.value' reaches into sub-documents).")
    where: dict[str, Any] = Field(
        default_factory=lambda: {"subj_id": "{subject}", "run_id": "{run}"},
        description="Documents of one BOLD run: field -> value; '{subject}' and '{run}' are filled with each "
        "run's subject and run number, and match numbers or strings alike, leading zeros ignored (subject "
        "'01' matches 1 and '1').")
    time_field: str | None = Field(
        None, description="Field giving each row's time (one number per row). null: the rows of a run are in TR "
        "order, one per TR from the run's first volume (time_unit must be tr).")
    time_unit: Literal["tr", "ms", "s"] = Field(
        "tr", description="tr: 0-based TR index within the run (the run's first volume is TR 0); ms or s: a "
        "timestamp on the clock of the plays' action timestamps (stimuli.time_unit converts those).")

    @model_validator(mode="after")
    def _time(self) -> RegressorOptions:
        if self.time_field is None and self.time_unit != "tr":
            raise ValueError(f"time_unit={self.time_unit!r} needs time_field (the field holding each row's "
                             "timestamp); without one the rows are read one per TR (time_unit: tr).")
        placeholders = {v for v in self.where.values() if isinstance(v, str) and "{" in v}
        if not placeholders <= {"{subject}", "{run}"}:
            raise ValueError(f"where={self.where!r}: values may be '{{subject}}' or '{{run}}' (whole values) or "
                             "fixed values; other placeholders are not filled.")
        if "{run}" not in placeholders:
            raise ValueError(f"where={self.where!r} does not select a run: add e.g. run_id: '{{run}}' so that each "
                             "BOLD run reads its own rows.")
        return self


class ModelSpec(StrictModel):
    """A pretrained model read layer by layer."""

    name: str = Field(description="Short name used in tables and figures.")
    source: str = Field("", description="Hugging Face model id, local folder, or 'builtin:minilm' (none for "
                        "kind: baseline).")
    kind: Literal["text", "multimodal", "baseline"] = Field(
        "text", description="'text': a text encoder/LM reading the filled prompt; 'multimodal': an adapter of "
        "brainalign.features.registry (VLMs, video/audio LLMs, ViT/CLIP/VideoMAE/Wav2Vec2 baselines) reading "
        "the stimulus with the prompt; 'baseline': a frame baseline of brainalign.features.baselines (`baseline`).",
    )
    baseline: Literal["pixels", "motion_energy", "random", "rl_agent", "bson_regressors"] | None = Field(
        None, description="kind: baseline only: which frame features (brainalign.features.baselines."
        "baseline_features), computed per stimulus frame, one space named '<name>/none/L0'; bson_regressors: "
        "the rows of a .bson file put on each run's frames (RegressorOptions).",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="kind: baseline only: keyword arguments of the baseline (e.g. size, fps, "
        "dim, agent; bson_regressors: the fields of RegressorOptions); paths are relative to brain.data_root.",
    )
    model_type: str | None = Field(
        None, description="The checkpoint's config.model_type (e.g. qwen2_5_vl, instructblip, vit): lets "
        "`validate` check the adapter and `--models tiny` build a small model of the same architecture "
        "without the weights.",
    )
    layers: Literal["all"] | list[int | float] = "all"
    pooling: Literal["mean", "last", "cls", "stimulus", "prompt", "generated"] = Field(
        "mean", description="Token pooling: text models mean|last|cls; multimodal mean|stimulus|prompt|last|"
        "generated (cls for image encoders).",
    )
    component: Literal["language", "vision", "connector"] = Field(
        "language", description="Multimodal models: which part's hidden states are read."
    )
    prompts: Literal["all", "none"] | list[str] = Field(
        "all", description="Prompts this model is read with: all, a subset, or none (unimodal baselines: one "
        "prompt-free feature set named 'none').",
    )
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="Weights and activations of the model ('auto': the checkpoint's own dtype). "
        "bfloat16 halves the memory of float32 and runs fast on GPUs; features are pooled in float32 and cached "
        "as float32 whatever the dtype (non-float32 features are other cache entries).",
    )
    device: str | None = Field(
        None, pattern=r"^(cpu|cuda(:[0-9]+)?|mps|auto)$",
        description="Where the model runs: cpu, cuda, cuda:N, or auto (shard over every visible GPU with "
        "accelerate's device_map='auto', so that a 70B model in bfloat16 fits on several GPUs). null: a GPU when "
        "torch sees one, else the CPU. `validate` rejects a GPU this machine lacks; --dry-run plans without one.",
    )
    modality: Literal["auto", "image", "video", "audio"] = Field(
        "auto", description="What the model reads of a movie clip: 'auto' = audio for audio models, the clip's "
        "middle frame ('image') for image encoders (ViT, CLIP, DINOv2, SigLIP; by model_type), video otherwise.",
    )
    revision: str | None = None
    trust_remote_code: bool = False
    batch_size: int = Field(32, gt=0, description="Texts per forward pass (kind: text); stimuli per vision-"
                            "encoder call (kind: multimodal: images are encoded together, the language model then "
                            "reads each stimulus with its prompts).")
    weights: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="'random' = untrained control: the same architecture from its config, seeded random init "
        "(transformers' per-layer initialisation), same tokenizer and pooling.",
    )
    init_seed: int = Field(0, description="Seed of the random initialisation (weights: random only).")

    @model_validator(mode="after")
    def _kind_fields(self) -> ModelSpec:
        if self.kind == "baseline":
            if self.baseline is None:
                raise ValueError(f"models[{self.name}] has kind: baseline but no `baseline`; choose one of pixels, "
                                 "motion_energy, random, rl_agent, bson_regressors.")
            if self.baseline == "bson_regressors":
                try:
                    RegressorOptions(**self.options)
                except ValidationError as err:
                    problems = "; ".join(f"options.{'.'.join(map(str, e['loc'])) or '(all)'}: {e['msg']}"
                                         for e in err.errors())
                    raise ValueError(f"models[{self.name}] (baseline: bson_regressors): {problems}. The options are "
                                     "path, field, where, time_field, time_unit (docs/choices.md).") from None
            if "prompts" in self.model_fields_set and self.prompts != "none":
                raise ValueError(f"models[{self.name}] is a frame baseline: it reads no prompt; set prompts: none "
                                 "or remove the key.")
            self.prompts = "none"
        else:
            if self.baseline is not None or self.options:
                raise ValueError(f"models[{self.name}]: `baseline`/`options` belong to kind: baseline, not kind: "
                                 f"{self.kind}.")
            if not self.source:
                raise ValueError(f"models[{self.name}]: source is missing; give a Hugging Face id or a local folder.")
        return self

    def prompts_from(self, prompts: dict[str, str]) -> dict[str, str]:
        """The prompt templates this model is read with, out of the config's ``prompts`` (name -> template).

        ``prompts: none`` gives ``{"none": "{stimulus}"}``, ``all`` every template, a list the named ones.
        """
        if self.prompts == "none":
            return {"none": "{stimulus}"}
        if self.prompts == "all":
            return dict(prompts)
        return {name: prompts[name] for name in self.prompts}


class TimingSpec(StrictModel):
    """From stimulus features to the TR grid."""

    delays: list[int] = Field(default_factory=lambda: [1, 2, 3, 4], description="FIR delays in TRs.")
    pca_components: int | None = Field(
        16,
        gt=0,
        description="Reduce every feature space to this many principal components, fit on training runs "
        "only (matched dimensionality). null keeps all features.",
    )

    @field_validator("delays")
    @classmethod
    def _delays_ok(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("delays is empty; use e.g. [1, 2, 3, 4] (TRs).")
        if any(d < 0 for d in v):
            raise ValueError(f"delays must be >= 0 TRs, got {v}.")
        if len(set(v)) != len(v):
            raise ValueError(f"delays has duplicates: {v}.")
        return v


class EncodingSpec(StrictModel):
    """Cross-validated voxelwise ridge."""

    alphas: list[PositiveFloat] = Field(default_factory=lambda: np.logspace(-1, 5, 13).tolist())
    outer_cv: Literal["leave-one-run-out", "split"] | list[int] = Field(
        "leave-one-run-out",
        description="'leave-one-run-out' (nested: every run is held out once; item data: every item fold), "
        "a list of test run ids, or 'split' (item data: the dataset's train/test split, e.g. NSD's shared 1000).",
    )
    item_folds: int = Field(
        5, ge=2, description="Item data (no time axis): items are dealt into this many seeded folds, which play "
        "the role of runs (inner CV, paired tests over held-out folds).",
    )
    inner_cv: Literal["leave-one-run-out"] = "leave-one-run-out"
    # Where the fits run, not what they compute: results are byte-identical for any value, so both are left out
    # of the config hash and the saved config.yaml (a run may be resumed with another worker count).
    n_workers: int = Field(
        1, ge=1, exclude=True,
        description="Worker processes for the (space, fold) and (partition, fold) fits; 1 fits in this process, "
        "more start a dask LocalCluster of single-threaded workers. Results are identical for any value.",
    )
    scheduler: str | None = Field(
        None, exclude=True,
        description="Address of a running dask scheduler (e.g. 'tcp://host:8786') to fit on instead of a "
        "LocalCluster; its workers need brainalign installed. Overrides n_workers.",
    )
    predictions_in_memory_gib: float = Field(
        8.0, gt=0, exclude=True,
        description="One feature space's held-out predictions (the voxel statistics keep one space at a time) "
        "larger than this (GiB) are a memory-mapped file in TMPDIR instead of RAM (identical results).",
    )
    blas_threads: int = Field(
        1, ge=1,
        description="BLAS/OpenMP threads of each fit, in this process or in a worker. Multi-threaded BLAS rounds "
        "differently (last bits), so this one is part of the config; one thread per fit is also the fast choice for "
        "many small fits on a shared machine. Raise it for a few large fits on a quiet machine.",
    )

    backend: Literal["numpy", "torch", "torch_cuda"] = Field(
        "numpy",
        # the backends round differently (last bits), so a non-default one is part of the config hash, as
        # blas_threads; the default is left out of it so that configs written before this field keep their hash
        exclude_if=lambda v: v == "numpy",
        description="Where the ridge fits' voxel-sized products run: 'numpy' (CPU), 'torch' (CPU, torch's threads) "
        "or 'torch_cuda' (the current CUDA GPU, float32, voxel chunks streamed from host memory). Same alphas and "
        "scores up to float32 rounding. With 'torch_cuda' keep n_workers at 1 (one process drives the GPU) and "
        "the dry-run prints GPU-hours.",
    )

    @field_validator("alphas")
    @classmethod
    def _alphas_ok(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("alphas is empty; use e.g. a log-spaced grid from 0.1 to 1e5.")
        return sorted(v)

    @model_validator(mode="after")
    def _gpu_in_one_process(self) -> EncodingSpec:
        if self.backend == "torch_cuda" and (self.n_workers > 1 or self.scheduler is not None):
            raise ValueError("backend 'torch_cuda' runs the fits in this process on its GPU; set n_workers: 1 and "
                             "no scheduler (several workers would share one GPU), or use backend 'numpy'/'torch'.")
        return self

    @field_validator("scheduler")
    @classmethod
    def _scheduler_ok(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"scheduler={v!r} is not a dask scheduler address; give e.g. 'tcp://host:8786', or leave "
                             "it out to fit on a LocalCluster of n_workers processes.")
        return v


class PartitionSpec(StrictModel):
    """Variance partitioning between 2 or 3 fitted feature spaces (set-theoretic; de Heer et al., 2017)."""

    name: str = Field(description="Label of this partition in tables and figures.")
    spaces: list[str] = Field(
        min_length=2, max_length=3,
        description="Feature space names as fitted, e.g. 'MiniLM-L6/action/L3' or 'baseline/onoff'; fix layers in "
        "advance rather than picking them on test data.",
    )
    min_r2_joint: float = Field(0.0, description="Voxels entering the percentages need joint R² above this.")
    dominance: bool = Field(True, description="General dominance per space and VIF between the spaces (after PCA).")
    vif_components: int = Field(10, gt=0, description="Principal components per space entering the VIF.")
    banded: bool = Field(False, description="Refit with banded ridge (one penalty per space) as a robustness check.")
    control: dict[str, str] | None = Field(
        None,
        description="Paired control of unique variance: {space: control space}, e.g. {'M/action/L3': "
        "'M/action/L3~stimulus_shuffled'}; the partition is refitted with the control in place of the space and "
        "the unique variances are compared per held-out run.",
    )

    @field_validator("spaces")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"partition spaces must differ, got {v}.")
        return v

    @model_validator(mode="after")
    def _control_ok(self) -> PartitionSpec:
        for space, ctl in (self.control or {}).items():
            if space not in self.spaces:
                raise ValueError(f"control names {space!r}, which is not one of this partition's spaces "
                                 f"{self.spaces}; key the control by the space it replaces.")
            if ctl in self.spaces:
                raise ValueError(f"control of {space!r} is {ctl!r}, which is already a space of the partition; "
                                 "name a control space (e.g. '<space>~stimulus_shuffled').")
        return self


class InContextSpec(StrictModel):
    """In-context prompts (video-audio study's ICL baseline): k worked examples before the query, not pooled."""

    k: int = Field(2, ge=1, description="Number of worked examples before the query.")
    examples: list[str] | None = Field(
        None, description="Example stimulus names (text-only); null = the k next other stimuli of the study."
    )
    separator: str = Field(" ", description="Text between examples and before the query.")
    with_stimuli: bool = Field(
        False, description="Multimodal models: each example shows its stimulus (image/clip) in its own chat turn, "
        "followed by the prompt and its worked answer; false = text-only examples. Examples are other stimuli of "
        "the study (seeded choice; `examples` restricts them to those ids)."
    )
    answer: str = Field(
        "{stimulus}", description="Multimodal models: worked answer of an example; '{stimulus}' is its name."
    )

    @field_validator("answer")
    @classmethod
    def _answer_ok(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("in_context.answer is empty; a worked example needs answer text, e.g. '{stimulus}'.")
        try:
            v.format(stimulus="x")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"in_context.answer {v!r} may only use the '{{stimulus}}' placeholder "
                             "(double other braces: '{{' and '}}').") from None
        return v


class ControlSpec(StrictModel):
    """Controls fitted next to the effects they control, at one fixed layer (methods: 'compared with what?')."""

    prompts: list[Literal["scrambled", "neutral"]] = Field(
        default_factory=list,
        description="'scrambled': every prompt other than the unprompted one with its words shuffled (seeded, "
        "same tokens); 'neutral': the neutral_prompt template. The unprompted prompt is the empty-instruction control.",
    )
    features: list[Literal["stimulus_shuffled", "gaussian"]] = Field(
        default_factory=list,
        description="'stimulus_shuffled': model features with the stimulus → feature assignment permuted "
        "within each run (seeded); 'gaussian': random normal features per stimulus, same dimensionality.",
    )
    feature_prompts: list[str] | None = Field(
        None, description="Prompts whose features get the feature controls (null = every prompt)."
    )
    in_context: InContextSpec | None = Field(
        None, description="Add an in-context version of every prompt but the unprompted one (null = none)."
    )
    layer: int | float = Field(0.5, description="The one layer (index, or relative depth in [0, 1]) of all controls.")
    models: list[str] | None = Field(
        None, min_length=1, description="Models (by name) that get the controls (null = every model that reads "
        "prompts): in-context features of a 7B video model cost k extra clips per TR and prompt.",
    )
    neutral_prompt: str = Field("Look at the {stimulus}.", description="Template of the neutral prompt.")
    max_token_difference: int = Field(5, ge=0, description="Warn when compared prompts differ by more tokens.")
    alpha: float = Field(0.05, gt=0, lt=1, description="An effect 'survives' its control when paired p < alpha.")

    @field_validator("neutral_prompt")
    @classmethod
    def _neutral_ok(cls, v: str) -> str:
        if "{stimulus}" not in v:
            raise ValueError(f"neutral_prompt ({v!r}) has no '{{stimulus}}' placeholder, e.g. 'Look at the {{stimulus}}.'")
        return v


class AnalysisSpec(StrictModel):
    """What to compute from the held-out predictions."""

    baselines: list[Literal["onoff", "category", "category_shuffled"]] = Field(
        default_factory=lambda: ["onoff", "category", "category_shuffled"]
    )
    reference: str = Field("baseline/onoff", description="Feature space every other one is compared against.")
    unprompted: str | None = Field(
        "unprompted", description="Prompt name whose features define the prompt-driven gain (or null)."
    )
    responsive_fraction: float = Field(
        0.2, gt=0, le=1,
        description="Share of voxels, ranked by the reference model's inner-CV score on training runs, "
        "whose mean r is the headline metric (1.0 = all voxels).",
    )
    metric: Literal["mean_r_responsive", "mean_r", "median_r"] = Field(
        "mean_r_responsive", description="Run-level score used for comparisons, layer curves and gains."
    )
    n_permutations: int = Field(1000, ge=0, description="Permutations for voxelwise p-values (0 = skip).")
    block_length: int = Field(10, ge=1, description="TRs per block in the block permutation (keeps autocorrelation).")
    fdr_q: float = Field(0.05, gt=0, lt=1, description="Benjamini–Hochberg false discovery rate over voxels.")
    partitions: list[PartitionSpec] = Field(default_factory=list)
    controls: ControlSpec | None = Field(None, description="Controls reported beside their effects (null = none).")
    fwer_alpha: float | None = Field(
        None, gt=0, lt=1,
        description="Also control the family-wise error over voxels with the max-statistic permutation null "
        "(p_fwer, significant_fwer in voxel_scores); null = BH-FDR only. Caution: on planted nulls it rejects more "
        "often than nominal, clearly with leave-one-run-out (0.24 at 0.05), mildly with a fixed outer split "
        "(benchmarks/calib_fwer_loro.py).",
    )
    ceiling: CeilingSpec | None = Field(
        default_factory=CeilingSpec, description="Noise ceiling and normalised scores (null = method: none)."
    )
    best_layer: bool = Field(
        True, description="Best layer of Xiao et al. per model × prompt (× ROI): median voxels → median subjects → max."
    )
    coupling: CouplingSpec | None = Field(
        None, description="Instruction-semantics coupling (needs >= 4 prompts besides the unprompted one; null = off)."
    )
    group_how: Literal["mean", "median"] = Field(
        "mean", description="Statistic over subjects when several subjects' results are aggregated."
    )
    equivalence: list[EquivalenceSpec] = Field(
        default_factory=list,
        description="Equivalence tests (TOST) between sets of spaces, paired over held-out runs and, in the group "
        "results, over subjects (table 'equivalence').",
    )
    arms: list[ArmSpec] = Field(
        default_factory=list,
        description="Arms of a model comparison (video-audio study, row 6): the first arm against each other, "
        "paired over held-out runs and, in the group results, over subjects (tables 'arm_scores', "
        "'arm_comparisons'); [] = none.",
    )
    arm_layer: int | float = Field(
        0.5, description="Layer (index, or relative depth in [0, 1]) at which every model of an arm is scored "
        "(the nearest fitted layer of each model; in-context arms: analysis.controls.layer).",
    )


class Experiment(StrictModel):
    """A whole study: data, stimuli, models × prompts × layers, timing, encoding, analyses."""

    name: str
    seed: int = 0
    brain: BrainSpec
    stimuli: Stimuli
    models: list[ModelSpec]
    prompts: dict[str, str] = Field(description="Prompt name → template containing '{stimulus}'.")
    timing: TimingSpec = Field(default_factory=TimingSpec)
    encoding: EncodingSpec = Field(default_factory=EncodingSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)

    @field_validator("prompts")
    @classmethod
    def _prompts_ok(cls, v: dict[str, str], info) -> dict[str, str]:
        if not v:
            raise ValueError("prompts is empty; give at least one template such as 'a photo of a {stimulus}'.")
        for name, text in v.items():
            if not text.strip():
                raise ValueError(f"prompt '{name}' is empty; write a template containing '{{stimulus}}'.")
            try:
                text.format(stimulus="x")
            except (KeyError, IndexError, ValueError) as err:
                raise ValueError(
                    f"prompt '{name}' ({text!r}) has a placeholder other than {{stimulus}}: {err}; "
                    "write literal braces as '{{' and '}}'."
                ) from None
        stimuli = info.data.get("stimuli")
        if stimuli is None or isinstance(stimuli, (StimulusSpec, TextItemStimuli)):  # text goes into the prompt
            bare = [n for n, t in v.items() if "{stimulus}" not in t]
            if bare:
                raise ValueError(f"prompts {bare} have no '{{stimulus}}' placeholder; the stimulus text goes where "
                                 "the placeholder is.")
        return v

    @model_validator(mode="after")
    def _names_unique(self) -> Experiment:
        names = [m.name for m in self.models]
        if not names:
            raise ValueError("models is empty; name at least one model.")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique, {dupes} repeat.")
        for m in self.models:
            if isinstance(m.prompts, list):
                unknown = [p for p in m.prompts if p not in self.prompts]
                if unknown or not m.prompts:
                    raise ValueError(f"models[{m.name}].prompts names {unknown or 'nothing'}; choose from "
                                     f"{sorted(self.prompts)}, or 'all' / 'none'.")
            if m.kind == "text" and m.pooling in ("stimulus", "prompt", "generated"):
                raise ValueError(f"models[{m.name}]: pooling '{m.pooling}' needs kind: multimodal; text models "
                                 "pool mean, last or cls.")
            if m.kind == "baseline" and not isinstance(self.stimuli, (GameplayStimuli, ImageStimuli)):
                raise ValueError(f"models[{m.name}] is a frame baseline but stimuli.format is "
                                 f"'{self.stimuli.format}'; frame baselines need gameplay-frames or nsd-images.")
            if m.baseline == "bson_regressors" and not isinstance(self.stimuli, GameplayStimuli):
                raise ValueError(f"models[{m.name}] reads per-run regressors (baseline: bson_regressors), which are "
                                 f"placed on the frames of a run; stimuli.format '{self.stimuli.format}' has no runs "
                                 "of frames: use gameplay-frames.")
            if m.kind == "text" and not isinstance(self.stimuli, (StimulusSpec, TextItemStimuli)):
                raise ValueError(f"models[{m.name}] is a text model but stimuli.format is "
                                 f"'{self.stimuli.format}'; use kind: multimodal for image/video/audio stimuli.")
        if self.is_items:
            if self.analysis.baselines:
                raise ValueError(f"analysis.baselines {self.analysis.baselines} are TR-design baselines; item data "
                                 f"(brain.format {self.brain.format}) have none: set analysis.baselines: [] and name "
                                 "a model space (e.g. 'CLIP/none/L12') as analysis.reference.")
            if self.analysis.reference.startswith("baseline/"):
                raise ValueError(f"analysis.reference '{self.analysis.reference}' is a TR-design baseline; item data "
                                 "need a model space such as '<model>/<prompt>/L<layer>'.")
            if isinstance(self.encoding.outer_cv, list):
                raise ValueError("item data have folds, not runs: use encoding.outer_cv 'split' or "
                                 "'leave-one-run-out' (every item fold held out once).")
        elif self.encoding.outer_cv == "split":
            raise ValueError("encoding.outer_cv 'split' applies to item data (brain.format nsd or glmsingle); "
                             "time series use 'leave-one-run-out' or a list of test runs.")
        if self.brain.format == "nifti" and not isinstance(self.stimuli, StimulusSpec):
            raise ValueError(f"stimuli.format '{self.stimuli.format}' needs an item dataset (brain.format nsd or "
                             "glmsingle); a nifti time series takes stimuli.format tr-labels.")
        labels = [p.name for p in self.analysis.partitions]
        if len(set(labels)) != len(labels):
            raise ValueError(f"analysis.partitions names must be unique, got {labels}.")
        labels = [e.name for e in self.analysis.equivalence]
        if len(set(labels)) != len(labels):
            raise ValueError(f"analysis.equivalence names must be unique, got {labels}.")
        if self.analysis.unprompted is not None and self.analysis.unprompted not in self.prompts:
            raise ValueError(
                f"analysis.unprompted='{self.analysis.unprompted}' is not a prompt name; "
                f"choose one of {sorted(self.prompts)} or null."
            )
        ctl = self.analysis.controls
        if ctl is not None and ctl.in_context is not None and ctl.in_context.with_stimuli:
            text = [m.name for m in self.models if m.kind == "text"]
            if text:
                raise ValueError(f"analysis.controls.in_context.with_stimuli shows example stimuli, which text models "
                                 f"{text} cannot read; set with_stimuli: false or use multimodal models.")
        if ctl is not None and ctl.models is not None:
            unknown = [m for m in ctl.models if m not in names]
            if unknown:
                raise ValueError(f"analysis.controls.models names {unknown}, which are not models; choose from "
                                 f"{names}.")
        if ctl is not None and ctl.feature_prompts is not None:
            unknown = [p for p in ctl.feature_prompts if p not in self.prompts]
            if unknown:
                raise ValueError(f"analysis.controls.feature_prompts names {unknown}, which are not prompts; "
                                 f"choose from {sorted(self.prompts)}.")
        check_extra_analyses(self)
        return self

    def prompts_of(self, model: ModelSpec) -> dict[str, str]:
        """The prompt templates a model is read with (:meth:`ModelSpec.prompts_from` of this config's prompts)."""
        return model.prompts_from(self.prompts)

    @property
    def is_items(self) -> bool:
        """Item data (betas per stimulus, no time axis): NSD and GLMsingle."""
        return self.brain.format in ("nsd", "glmsingle")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON form: equal configs have equal hashes."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def _first_model(ann: Any) -> type[BaseModel] | None:
    """The first pydantic model inside an annotation (through Optional, list, Union and Annotated)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for a in getattr(ann, "__args__", None) or getattr(ann, "__origin__", None) and (ann.__origin__,) or ():
        found = _first_model(a)
        if found is not None:
            return found
    return None


def _known_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names valid at ``loc`` (for the 'did you mean' hint)."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return []
        ann = cur.model_fields[part].annotation
        cur = _first_model(ann) or ann
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return []


def format_validation_error(err: ValidationError, file: str | None) -> ConfigError:
    """Turn pydantic's error list into one message with dotted paths and hints."""
    lines = []
    first_field = None
    for e in err.errors():
        loc = tuple(e["loc"])  # drop the tag pydantic puts after a discriminated union ('stimuli.tr-labels.labels')
        loc = tuple(x for i, x in enumerate(loc) if not (i and loc[i - 1] == "stimuli" and x in STIMULUS_FORMATS))
        dotted = ".".join(str(p) for p in loc) or "<top level>"
        first_field = first_field or dotted
        if e["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _known_fields(Experiment, loc), n=1)
            fix = f" Did you mean '{hint[0]}'?" if hint else " Remove it."
            lines.append(f"'{dotted}': unknown key.{fix}")
        elif e["type"] == "missing":
            lines.append(f"'{dotted}': required key is missing.")
        else:
            lines.append(f"'{dotted}': {e['msg']} (got {e.get('input')!r}).")
    return ConfigError("invalid config:\n  " + "\n  ".join(lines), file=file, field=first_field)


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...], file: str | None = None) -> dict:
    """Set ``dotted.key=value`` pairs (values parsed with ``yaml.safe_load``) in a raw config mapping.

    ``brain.subjects=[1, 2]`` or ``analysis.n_permutations=0``: what a user changes for one run without
    editing the study's file (the results record the config as run). List items are addressed by index.

    Raises
    ------
    ConfigError
        For a malformed pair or a path through a non-mapping.
    """
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write KEY=VALUE, e.g. --set analysis.n_permutations=0.", file=file)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({err}).", file=file) from None
        parts = key.strip().split(".")
        cur: Any = raw
        for i, part in enumerate(parts[:-1]):
            nxt = cur[int(part)] if isinstance(cur, list) and part.isdigit() and int(part) < len(cur) else (
                cur.setdefault(part, {}) if isinstance(cur, dict) else None)
            if not isinstance(nxt, (dict, list)):
                raise ConfigError(f"--set {item!r}: '{'.'.join(parts[:i + 1])}' is not a section.", file=file,
                                  field=key)
            cur = nxt
        last = parts[-1]
        if isinstance(cur, list):
            if not (last.isdigit() and int(last) < len(cur)):
                raise ConfigError(f"--set {item!r}: index {last} is out of range.", file=file, field=key)
            cur[int(last)] = value
        else:
            cur[last] = value
    return raw


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Experiment:
    """Read and validate an experiment YAML file (``yaml.safe_load`` only), after ``--set`` overrides.

    Raises
    ------
    ConfigError
        With the file, the dotted field and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("file not found; check the path.", file=str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"YAML syntax error{where}: {getattr(err, 'problem', err)}", file=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError("the top level must be a mapping of keys (name, brain, stimuli, ...).", file=str(path))
    raw = apply_overrides(raw, overrides, str(path))
    try:
        return Experiment.model_validate(raw)
    except ValidationError as err:
        raise format_validation_error(err, str(path)) from None
