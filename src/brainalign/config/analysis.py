"""Config sections of the extra analyses (noise ceilings, instruction coupling).

Kept apart from :mod:`brainalign.config` so that the analysis options can grow
without touching the experiment schema; :class:`brainalign.config.AnalysisSpec`
holds them as ``analysis.ceiling`` and ``analysis.coupling``.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CeilingSpec", "CouplingSpec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class CeilingSpec(_Strict):
    """Noise ceiling and ceiling-normalised scores (methods.md §1.4)."""

    method: Literal["repeats", "subject_subset", "none"] = Field(
        "none",
        description="'repeats': explainable variance of repeated presentations (needs repeats of the held-out "
        "stimuli; single-subject block designs such as the demo have none); 'subject_subset': inter-subject "
        "extrapolation v0·(1 − exp(−k/τ)) (needs several subjects on the same stimuli); 'none': no ceiling.",
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


class CouplingSpec(_Strict):
    """Seed 001's instruction-semantics coupling: text similarity of instructions vs similarity of their maps."""

    model: str | None = Field(None, description="Model (by name) whose maps and text embeddings are used; null = first.")
    layer: int | float = Field(
        0.5, description="Layer (index, or relative depth in [0, 1]) of the alignment maps; must be a fitted layer."
    )
    text_model: str | None = Field(
        None, description="Text model (by name, kind: text) that embeds the instruction texts; null = the "
        "coupling model itself (which must then be a text model).",
    )
    text_layer: int | float = Field(
        1.0, description="Layer of the text model that embeds the instruction texts (1.0 = last hidden state)."
    )
    method: Literal["spearman", "pearson"] = Field("spearman", description="Correlation of the two upper triangles.")
    n_permutations: int = Field(10000, ge=1, description="Mantel permutations of the instruction labels.")
