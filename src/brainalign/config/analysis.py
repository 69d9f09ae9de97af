"""Config sections of the extra analyses (noise ceilings, instruction coupling).

Kept apart from :mod:`brainalign.config` so that the analysis options can grow
without touching the experiment schema; :class:`brainalign.config.AnalysisSpec`
holds them as ``analysis.ceiling`` and ``analysis.coupling``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from brainalign.config._base import StrictModel

__all__ = ["ArmSpec", "CeilingSpec", "CouplingSpec", "EquivalenceSpec", "check_extra_analyses", "coupling_model",
           "coupling_instructions"]


class CeilingSpec(StrictModel):
    """Noise ceiling and ceiling-normalised scores (docs/choices.md, ``analysis.ceiling``)."""

    method: Literal["repeats", "subject_subset", "ncsnr", "none"] = Field(
        "none",
        description="'repeats': explainable variance of repeated presentations (needs repeats of the held-out "
        "stimuli; single-subject block designs such as the demo have none); 'subject_subset': inter-subject "
        "extrapolation v0·(1 − exp(−k/τ)) (needs several subjects on the same stimuli); 'ncsnr': the dataset's own "
        "noise-ceiling SNR per voxel (format nsd with brain.options.ncsnr: true), ceiling for n_averaged repeats; "
        "'none': no ceiling.",
    )
    threshold: float = Field(
        0.05, gt=0, lt=1, description="Voxels whose correlation-scale ceiling is below this get NaN normalised scores."
    )
    clip: bool = Field(False, description="Clip the normalised scores to [0, 1] (the Movie10 notebook did).")
    n_averaged: int = Field(
        1, ge=1,
        description="Repeats averaged into the scored responses ('repeats' only): 1 = single trial (bias-corrected "
        "explainable variance); k > 1 = NSD's ncsnr ceiling for k averaged repeats.",
    )
    n_bootstrap: int = Field(100, ge=1, description="Bootstrap resamples of the extrapolation ('subject_subset').")
    max_combinations: int | None = Field(
        10, ge=1, description="Source subsets per subset size ('subject_subset'; null = all combinations)."
    )


class CouplingSpec(StrictModel):
    """Instruction-semantics coupling (video-audio study): text similarity of instructions vs that of their maps."""

    model: str | None = Field(None, description="Model (by name) whose maps and text embeddings are used; null = first.")
    layer: int | float = Field(
        0.5, description="Layer (index, or relative depth in [0, 1]) of the alignment maps; must be a fitted layer."
    )
    text_model: str | None = Field(
        None, description="Text model (by name, kind: text) that embeds the instruction texts; null = the "
        "coupling model itself (which must then be a text model).",
    )
    text_source: str | None = Field(
        None, description="A text encoder that is not one of `models` (Hugging Face id, local folder or "
        "'builtin:minilm', which runs offline) to embed the instruction texts: studies of images, clips or sounds "
        "cannot list a text model among their models. Excludes text_model.",
    )
    text_layer: int | float = Field(
        1.0, description="Layer of the text model that embeds the instruction texts (1.0 = last hidden state)."
    )
    method: Literal["spearman", "pearson"] = Field("spearman", description="Correlation of the two upper triangles.")
    n_permutations: int = Field(10000, ge=1, description="Mantel permutations of the instruction labels.")


class ArmSpec(StrictModel):
    """One arm of a model comparison (video-audio study, row 6: instruction-tuned vs in-context, non-instruction-
    tuned and unimodal models).

    An arm's score per unit (held-out run; subject in the group results) is the mean over its models of each
    model's mean score over its spaces at ``analysis.arm_layer`` (every prompt of the model; with ``in_context``,
    the model's in-context control spaces of ``analysis.controls.in_context`` instead).
    """

    name: str = Field(description="Label of the arm in tables and figures, e.g. 'instruction-tuned'.")
    models: list[str] = Field(min_length=1, description="Model names (of `models`) in this arm.")
    in_context: bool = Field(
        False, description="Score the models' in-context control spaces ('<model>/<prompt>~icl<k>/L<layer>', "
        "analysis.controls.in_context) instead of their own spaces.",
    )

    @model_validator(mode="after")
    def _models_unique(self) -> ArmSpec:
        dupes = sorted({m for m in self.models if self.models.count(m) > 1})
        if dupes:
            raise ValueError(f"analysis.arms '{self.name}': models {dupes} repeat; list each model once.")
        return self


class EquivalenceSpec(StrictModel):
    """An equivalence test (TOST) between two sets of fitted spaces (gameplay study: VLMs vs LAMs).

    Each side's score per unit (held-out run of a subject; subject in the group results) is the mean of its
    spaces' scores; :func:`brainalign.analysis.equivalence.tost_paired` tests ``|mean(a − b)| < margin``.
    """

    name: str = Field(description="Label of this test in tables and figures.")
    a: list[str] = Field(min_length=1, description="Fitted space names of side a, e.g. 'Qwen2.5-VL/action/L-1'.")
    b: list[str] = Field(min_length=1, description="Fitted space names of side b.")
    margin: float = Field(
        gt=0, description="Equivalence bound on the mean difference a − b, in the units of the metric (e.g. 0.01 "
        "in r); fix it before seeing the data.",
    )
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Level of each one-sided test (CI at 1 − 2·alpha).")
    metric: Literal["mean_r_responsive", "mean_r", "median_r"] | None = Field(
        None, description="Score compared (null = analysis.metric); 'mean_r' is the whole-brain mean.",
    )

    @model_validator(mode="after")
    def _sides_differ(self) -> EquivalenceSpec:
        both = sorted(set(self.a) & set(self.b))
        if both:
            raise ValueError(f"analysis.equivalence '{self.name}': spaces {both} are on both sides; a and b must "
                             "not overlap.")
        return self


# --------------------------------------------------------------------------- checks across sections
def check_extra_analyses(exp) -> None:
    """Checks that need more than one config section (called by the config validator).

    Raises
    ------
    ValueError
        Naming the field (``analysis.coupling...``) and the fix.
    """
    ceiling = exp.analysis.ceiling
    if ceiling is not None and ceiling.method == "ncsnr" and not (
            exp.brain.format == "nsd" and exp.brain.options.get("ncsnr")):
        raise ValueError("analysis.ceiling.method='ncsnr' reads the dataset's own noise-ceiling SNR: it needs "
                         "brain.format nsd with brain.options.ncsnr: true (or choose method repeats/subject_subset).")
    _check_arms(exp)
    cpl = exp.analysis.coupling
    if cpl is None:
        return
    names = [m.name for m in exp.models]
    if cpl.model is not None and cpl.model not in names:
        raise ValueError(f"analysis.coupling.model={cpl.model!r} is not a model name; choose one of {names} or null.")
    if cpl.text_model is not None and cpl.text_model not in names:
        raise ValueError(f"analysis.coupling.text_model={cpl.text_model!r} is not a model name; choose one of "
                         f"{names} or null.")
    if cpl.text_model is not None and cpl.text_source is not None:
        raise ValueError(f"analysis.coupling names both text_model={cpl.text_model!r} and text_source="
                         f"{cpl.text_source!r}; keep one (text_source: a text encoder that is not one of the models).")
    spec = coupling_model(exp)
    text = None if cpl.text_source is not None else next(m for m in exp.models if m.name == (cpl.text_model or spec.name))
    if text is not None and getattr(text, "kind", "text") != "text":
        raise ValueError(f"analysis.coupling embeds the instruction texts with model {text.name!r}, which is "
                         f"kind {text.kind!r}; name a text model in analysis.coupling.text_model.")
    instructions = coupling_instructions(exp, spec)
    if len(instructions) < 4:
        raise ValueError(
            f"analysis.coupling needs at least 4 prompts besides the unprompted one (an RSA over fewer than 6 "
            f"instruction pairs has no usable Mantel p-value); got {instructions}. Add prompts or set "
            "analysis.coupling: null."
        )


def _check_arms(exp) -> None:
    arms = exp.analysis.arms
    if not arms:
        return
    labels = [a.name for a in arms]
    if len(arms) < 2 or len(set(labels)) != len(labels):
        raise ValueError(f"analysis.arms needs at least 2 arms with distinct names (the first is compared with each "
                         f"other); got {labels}.")
    names = [m.name for m in exp.models]
    for arm in arms:
        unknown = [m for m in arm.models if m not in names]
        if unknown:
            raise ValueError(f"analysis.arms '{arm.name}' names models {unknown}, which are not in `models`; choose "
                             f"from {names}.")
        if arm.in_context:
            ctl = exp.analysis.controls
            if ctl is None or ctl.in_context is None:
                raise ValueError(f"analysis.arms '{arm.name}' has in_context: true, which scores the in-context "
                                 "control spaces; configure analysis.controls.in_context (e.g. {k: 2}).")
            if ctl.layer != exp.analysis.arm_layer:
                raise ValueError(f"analysis.arms '{arm.name}' scores in-context spaces, which exist at "
                                 f"analysis.controls.layer={ctl.layer!r} only, but the other arms are scored at "
                                 f"analysis.arm_layer={exp.analysis.arm_layer!r}; set both to the same layer.")
            bare = [m.name for m in exp.models if m.name in arm.models and (m.kind == "baseline" or m.prompts == "none"
                                                                              or not _controlled(ctl, m.name))]
            if bare:
                raise ValueError(f"analysis.arms '{arm.name}': models {bare} get no in-context controls (prompt-free, "
                                 "or left out of analysis.controls.models); list models that read instructions.")


def _controlled(ctl, model: str) -> bool:
    return ctl.models is None or model in ctl.models


def coupling_model(exp):
    """The model whose layers the coupling analysis reads (``analysis.coupling.model``, default the first)."""
    cpl = exp.analysis.coupling
    return next(m for m in exp.models if cpl.model in (None, m.name))


def coupling_instructions(exp, spec) -> list[str]:
    """The prompt names of ``spec`` that are instructions (all but ``analysis.unprompted``)."""
    prompts = exp.prompts_of(spec) if hasattr(exp, "prompts_of") else exp.prompts
    return [p for p in prompts if p != exp.analysis.unprompted]
