"""The analyses of ``analysis:`` that run after the encoding, as tidy tables.

:func:`extra_analyses` is called once by :func:`brainalign.pipeline.runner.run` and
returns the tables below (each only when its option is on and its inputs
exist):

=========================  ==================================================================
``layer_medians``          median r over voxels per subject × model × prompt × ROI × layer
``best_layer``             Xiao et al. (2026)'s best layer: median voxels → median subjects → max layer
``ceiling``                correlation-scale noise ceiling per voxel (``analysis.ceiling``)
``normalised_scores``      r / ceiling per space × voxel, low ceilings NaN (threshold, clip)
``normalised_summary``     mean and median normalised score per space, with the convention
``partition_dominance``    general dominance of every partition space, per ROI
``partition_vif``          VIF of every principal component of every partition space
``partition_banded``       ridge vs banded-ridge percentages of the joint R² (robustness)
``partition_controls``     unique variance of a space vs its control, paired over held-out runs
``partition_control_runs`` the per-run values behind ``partition_controls``
``coupling``               instruction-semantics coupling (Oota et al., 2025) and its Mantel p
``coupling_similarity``    the two instruction × instruction similarity matrices, tidy
=========================  ==================================================================

The ceiling tables are in :mod:`brainalign.pipeline.ceilings`, the partition
tables in :mod:`brainalign.pipeline.partitions` (both re-exported here).
The functions that need several subjects (:func:`subject_subset_ceiling_table`)
take a mapping ``subject -> responses`` so that a multi-subject driver can call
them directly; a single-subject run says what is missing instead.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from brainalign._utils.errors import ConfigError
from brainalign.config import ModelSpec
from brainalign.config.analysis import check_extra_analyses, coupling_instructions, coupling_model
from brainalign.pipeline.ceilings import (
    ceiling_tables_for_run,
    add_study_ceiling,
    normalised_score_tables,
    repeat_ceiling_table,
    roi_normalised_tables,
    study_ceiling_tables,
    subject_subset_ceiling_table,
)
from brainalign.timing.spaces import resolve_space_name, space_name
from brainalign.pipeline.partitions import (
    partition_banded_table,
    partition_control_tables,
    partition_dominance_table,
    partition_vif_table,
)

if TYPE_CHECKING:
    from brainalign.config import Experiment
    from brainalign.study.data import StudyData
    from brainalign.timing.spaces import FeatureSpace

__all__ = [
    "EXTRA_TABLES",
    "check_extra_analyses",
    "extra_analyses",
    "layer_median_table",
    "best_layer_table",
    "repeat_ceiling_table",
    "subject_subset_ceiling_table",
    "normalised_score_tables",
    "study_ceiling_tables",
    "add_study_ceiling",
    "partition_dominance_table",
    "partition_vif_table",
    "partition_banded_table",
    "partition_control_tables",
    "coupling_tables",
    "coupling_text_spec",
    "instruction_text",
    "GROUP_TABLES",
    "group_analyses",
]

EXTRA_TABLES = ("layer_medians", "best_layer", "ceiling", "normalised_scores", "normalised_summary", "roi_ceilings",
                "roi_normalised",
                "partition_dominance", "partition_vif", "partition_banded", "partition_controls",
                "partition_control_runs", "coupling", "coupling_similarity")


# --------------------------------------------------------------------------- entry point
def extra_analyses(
    exp: Experiment,
    data: StudyData,
    spaces: Sequence[FeatureSpace],
    tables: Mapping[str, pd.DataFrame],
    rois: Mapping[str, np.ndarray] | None = None,
    store=None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, pd.DataFrame]:
    """Every configured extra analysis of one subject's run.

    Parameters
    ----------
    exp : Experiment
    data : StudyData
    spaces : list of FeatureSpace
        Every fitted space (models, baselines, controls).
    tables : mapping
        The tables made so far: ``spaces``, ``voxel_scores`` and, with
        partitions, ``partition_voxels`` and ``partition``.
    rois : mapping ROI -> bool ndarray (n_voxels,), optional
    store : FeatureStore, optional
        Feature cache (the coupling embeds the instruction texts through it).
    log : callable
        Receives one line per skipped analysis (and the reason).

    Returns
    -------
    dict of table name -> DataFrame (names in :data:`EXTRA_TABLES`)
    """
    a = exp.analysis
    out: dict[str, pd.DataFrame] = {}
    space_table, vox = tables["spaces"], tables["voxel_scores"]
    subject = data.recording.subject
    if a.best_layer and (space_table.kind == "model").any():
        out["layer_medians"] = layer_median_table(vox, space_table, rois, subject)
        out["best_layer"] = best_layer_table(out["layer_medians"])
    out.update(ceiling_tables_for_run(exp, data, vox, log))
    if rois and "normalised_scores" in out:  # per ROI: the ceiling behind the ROI bars, normalised scores
        out["roi_ceilings"], out["roi_normalised"] = roi_normalised_tables(out["normalised_scores"], rois)
    by_name = {sp.name: sp for sp in spaces}
    dom, vif, banded, ctl_sum, ctl_runs = [], [], [], [], []
    alpha = a.controls.alpha if a.controls is not None else 0.05
    for spec in a.partitions:
        if spec.dominance and "partition_voxels" in tables:
            pv = tables["partition_voxels"]
            dom.append(partition_dominance_table(pv[pv.partition == spec.name], spec, rois))
            vif.append(partition_vif_table({n: by_name[n].X for n in spec.spaces}, spec))
        if spec.banded and "partition" in tables:
            pct = tables["partition"]
            banded.append(partition_banded_table(exp, data, by_name, spec, pct[pct.partition == spec.name]))
        if spec.control:
            s, r = partition_control_tables(exp, data, by_name, spec, alpha)
            ctl_sum.append(s)
            ctl_runs.append(r)
    for name, parts in (("partition_dominance", dom), ("partition_vif", vif), ("partition_banded", banded),
                        ("partition_controls", ctl_sum), ("partition_control_runs", ctl_runs)):
        if parts:
            out[name] = pd.concat(parts, ignore_index=True)
    if a.coupling is not None:
        out["coupling"], out["coupling_similarity"] = coupling_tables(exp, data.stimuli, vox, store,
                                                                      spaces=space_table)
    return out


# --------------------------------------------------------------------------- best layer (Xiao et al., 2026)
def layer_median_table(
    voxel_scores: pd.DataFrame, spaces: pd.DataFrame, masks: Mapping[str, np.ndarray] | None = None,
    subject: str = "01",
) -> pd.DataFrame:
    """Median held-out r over the voxels of every ROI, per model × prompt × layer (one subject).

    Parameters
    ----------
    voxel_scores : DataFrame (space, voxel, r)
    spaces : DataFrame (space, kind, model, prompt, layer, depth); only ``kind == "model"`` rows count
    masks : mapping ROI -> bool ndarray (n_voxels,), optional
        "all" (every voxel) is always included.
    subject : str

    Returns
    -------
    DataFrame with columns ``subject, model, prompt, roi, layer, depth, median_r, n_voxels``
    (concatenate the tables of several subjects before :func:`best_layer_table`).
    """
    ms = spaces[spaces.kind == "model"]
    wide = voxel_scores.pivot(index="voxel", columns="space", values="r")
    n_vox = len(wide)
    masks = {"all": np.ones(n_vox, dtype=bool), **{k: np.asarray(v, dtype=bool) for k, v in (masks or {}).items()}}
    rows = []
    for sp in ms.itertuples():
        if sp.space not in wide:
            continue
        r = wide[sp.space].to_numpy(dtype=np.float64)
        for roi, m in masks.items():
            if m.shape != (n_vox,):
                raise ValueError(f"masks[{roi!r}] has shape {m.shape}; it must be boolean over the {n_vox} voxels.")
            v = r[m & np.isfinite(r)]
            rows.append(dict(subject=str(subject), model=sp.model, prompt=sp.prompt, roi=roi, layer=int(sp.layer),
                             depth=float(sp.depth), median_r=float(np.median(v)) if v.size else np.nan,
                             n_voxels=int(v.size)))
    return pd.DataFrame(rows, columns=["subject", "model", "prompt", "roi", "layer", "depth", "median_r", "n_voxels"])


def best_layer_table(layer_medians: pd.DataFrame) -> pd.DataFrame:
    """The brain score of Xiao et al. (2026): median over voxels → median over subjects → max over layers.

    Parameters
    ----------
    layer_medians : DataFrame from :func:`layer_median_table`, one or several subjects

    Returns
    -------
    DataFrame with one row per model × prompt × ROI: ``model, prompt, roi, best_layer, best_depth, score``
    (group median at the best layer), ``mad`` (raw median absolute deviation of the subject medians there)
    and ``n_subjects``.
    """
    from brainalign.analysis.stats import mad

    need = {"subject", "model", "prompt", "roi", "layer", "depth", "median_r"}
    if not need <= set(layer_medians.columns):
        raise ValueError(f"layer_medians lacks columns {sorted(need - set(layer_medians.columns))}; pass the table "
                         "from layer_median_table (one per subject, concatenated).")
    rows = []
    for (model, prompt, roi), g in layer_medians.groupby(["model", "prompt", "roi"], sort=True):
        wide = g.pivot(index="subject", columns="layer", values="median_r")  # (subjects, layers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            group = np.nanmedian(wide.to_numpy(dtype=np.float64), axis=0)
        if not np.isfinite(group).any():
            continue
        k = int(np.nanargmax(group))
        layer = wide.columns[k]
        depth = g.loc[g.layer == layer, "depth"].iloc[0]
        rows.append(dict(model=model, prompt=prompt, roi=roi, best_layer=int(layer), best_depth=float(depth),
                         score=float(group[k]), mad=float(mad(wide[layer].to_numpy())), n_subjects=len(wide)))
    return pd.DataFrame(rows, columns=["model", "prompt", "roi", "best_layer", "best_depth", "score", "mad",
                                       "n_subjects"])


# --------------------------------------------------------------------------- instruction coupling (video-audio study)
def coupling_text_spec(exp: Experiment) -> ModelSpec:
    """The model that embeds the instruction texts: ``coupling.text_model``, a text model built from
    ``coupling.text_source`` (named ``coupling-text``), or else the coupling model itself."""
    cpl = exp.analysis.coupling
    if cpl.text_source is not None:
        return ModelSpec(name="coupling-text", source=cpl.text_source, kind="text")
    spec = coupling_model(exp)
    return next(m for m in exp.models if m.name == (cpl.text_model or spec.name))


def instruction_text(template: str) -> str:
    """The instruction of a prompt template: the text without the ``{stimulus}`` slot."""
    return " ".join(template.replace("{stimulus}", " ").split())


def coupling_tables(
    exp: Experiment, stimuli: Sequence[str], voxel_scores: pd.DataFrame, store=None, extractor=None,
    spaces: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The video-audio study's instruction-semantics coupling for the configured model and layer.

    Instructions are the model's prompts other than ``analysis.unprompted``;
    their texts (template without the stimulus slot) are embedded by
    ``coupling.text_model`` (default: the model) at ``coupling.text_layer``;
    their alignment maps are the voxelwise held-out r of
    ``<model>/<prompt>/L<layer>``. ``spaces`` (the spaces table) is needed
    when the text model is another model.

    Returns
    -------
    coupling : DataFrame ``model, maps, layer, text_model, text_layer, method, r, p_value, n_instructions,
        n_pairs``: one row for the instructed maps (``maps`` = "instructed") and, when
        ``analysis.controls.in_context`` fitted the model's in-context spaces at that layer, one for the maps of the
        same instructions after k worked examples (``maps`` = "in_context_k<k>"; row 7 of the video-audio study:
        in-context models couple more to the instruction text than instruction-tuned ones)
    similarity : DataFrame ``maps, prompt_a, prompt_b, text_similarity, map_similarity`` (upper triangle)
    """
    from brainalign.analysis.compare import instruction_semantics_coupling
    from brainalign.features.base import resolve_layers
    from brainalign.features.store import FeatureStore
    from brainalign.features.models import make_extractor

    check_extra_analyses(exp)
    cpl = exp.analysis.coupling
    spec = coupling_model(exp)
    text_spec = coupling_text_spec(exp)
    ex = extractor or make_extractor(text_spec)
    n_layers = ex.n_layers
    if text_spec is not spec:  # the coupling model's depth, from its fitted spaces (depth = layer / n_layers)
        if spaces is None:
            raise ValueError("coupling_tables needs the spaces table when the text model differs from the "
                             "coupling model.")
        ms = spaces[(spaces.kind == "model") & (spaces.model == spec.name) & (spaces.depth > 0)]
        if ms.empty:
            raise ConfigError(f"analysis.coupling.model={spec.name!r} has no fitted layers.")
        n_layers = int(round(ms.layer.iloc[0] / ms.depth.iloc[0]))
    layer = resolve_layers([cpl.layer], n_layers)[0]
    text_layer = resolve_layers([cpl.text_layer], ex.n_layers)[0]
    prompts = coupling_instructions(exp, spec)
    wide = voxel_scores.pivot(index="voxel", columns="space", values="r")
    names = [space_name(spec.name, p, layer) for p in prompts]
    missing = [n for n in names if n not in wide]
    if missing:
        raise ConfigError(f"analysis.coupling.layer={cpl.layer!r} is layer {layer}, but {missing} were not fitted; "
                         f"choose a layer listed in models[{spec.name}].layers.")
    templates = exp.prompts_of(spec) if hasattr(exp, "prompts_of") else exp.prompts
    texts = [instruction_text(templates[p]) for p in prompts]
    emb = np.asarray(ex.embed_cached(texts, [text_layer], store or FeatureStore()))[:, 0, :]
    variants = [("instructed", names)]
    ctl = exp.analysis.controls
    if ctl is not None and ctl.in_context is not None:  # the same instructions after k worked examples (row 7)
        icl = [space_name(spec.name, f"{p}~icl{ctl.in_context.k}", layer) for p in prompts]
        if all(n in wide for n in icl):
            variants.append((f"in_context_k{ctl.in_context.k}", icl))
    rows, sim = [], []
    for maps_of, cols in variants:
        maps = wide[cols].to_numpy(dtype=np.float64).T  # (n_instructions, n_voxels)
        res = instruction_semantics_coupling(emb, maps, method=cpl.method, n_permutations=cpl.n_permutations,
                                             seed=exp.seed, labels=prompts)
        rows.append(dict(model=spec.name, maps=maps_of, layer=layer, text_model=text_spec.name, text_layer=text_layer,
                         method=res["method"], r=res["r"], p_value=res["p_value"],
                         n_instructions=res["n_instructions"], n_pairs=res["n_pairs"]))
        St, Sm = res["text_similarity"], res["map_similarity"]
        sim += [dict(maps=maps_of, prompt_a=a, prompt_b=b, text_similarity=float(St.loc[a, b]),
                     map_similarity=float(Sm.loc[a, b])) for i, a in enumerate(prompts) for b in prompts[i + 1:]]
    return pd.DataFrame(rows), pd.DataFrame(sim)


# --------------------------------------------------------------------------- several subjects
GROUP_TABLES = ("group_scores", "group_comparisons", "group_prompt_gain", "group_roi_scores", "group_roi_comparisons",
                "group_best_layer")


def group_analyses(exp: Experiment, per_subject: Mapping[str, object]) -> dict[str, pd.DataFrame]:
    """Across-subject tables from several subjects' :class:`~brainalign.report.results.Results` of one experiment.

    Complements :func:`brainalign.pipeline.group.group_results`: each subject's ``run_scores``, ``roi_scores`` and
    ``layer_medians`` get a ``subject`` column and are aggregated with
    :func:`brainalign.analysis.group.group_tables` — run → subject (mean over held-out runs) → group
    (``analysis.group_how``, with SEM and MAD), paired Wilcoxon *and* t across subjects with both effect sizes
    (d_z, rank-biserial) against ``analysis.reference`` and for every prompt against ``analysis.unprompted`` —
    and ``layer_medians`` give Xiao et al. (2026)'s group best layer (median voxels → median subjects → max layer).

    Parameters
    ----------
    exp : Experiment
        Its ``analysis`` section rules the aggregation.
    per_subject : mapping subject -> Results (at least 2)

    Returns
    -------
    dict with (as the inputs allow) ``group_scores``, ``group_comparisons``, ``group_prompt_gain``,
    ``group_roi_scores``, ``group_roi_comparisons``, ``group_best_layer``.
    """
    from brainalign.analysis.group import group_tables

    if len(per_subject) < 2:
        raise ValueError(f"per_subject holds {len(per_subject)} subject(s); group tables need at least 2.")
    a = exp.analysis

    def stacked(name):
        parts = [r.tables[name].assign(subject=str(s)) for s, r in per_subject.items() if name in r.tables]
        return pd.concat(parts, ignore_index=True) if len(parts) == len(per_subject) else None

    spaces = stacked("spaces")
    spaces = spaces.drop(columns="subject").drop_duplicates("space", ignore_index=True) if spaces is not None else None
    reference = resolve_space_name(a.reference, spaces) if spaces is not None else a.reference
    out = group_tables(run_scores=stacked("run_scores"), roi_scores=stacked("roi_scores"), spaces=spaces,
                       reference=reference, unprompted=a.unprompted, metric=a.metric, how=a.group_how)
    med = stacked("layer_medians")
    if med is not None:
        out["group_best_layer"] = best_layer_table(med)
    return out
