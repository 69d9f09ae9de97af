"""One self-contained HTML report per results folder.

All figures are embedded as PNG data URIs, the tables as HTML and a CSV data
URI; the page makes no network request. Text from the config (names,
prompts, paths) goes through Jinja2 autoescaping.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from nilearn import masking

from brainalign._utils.atomic import atomic_write_text
from brainalign.report import figures
from brainalign.report.extras import MAX_ROWS, extra_sections
from brainalign.report.results import Results
from brainalign.timing.spaces import resolved_names

__all__ = ["render_report", "write_report", "render_steering_report", "write_steering_report"]

METRIC_LABELS = {
    "mean_r_responsive": "mean Pearson r over responsive voxels, chosen on training runs by the reference model",
    "mean_r": "mean Pearson r over all voxels",
    "median_r": "median Pearson r over all voxels",
}


#: summary tables offered as CSV downloads beside the tidy scores (small; the per-voxel tables stay on disk)
DOWNLOADS = ("comparisons", "layers", "prompt_gain", "controls", "partition", "roi_comparisons", "roi_scores",
             "roi_peaks", "roi_hierarchy", "roi_ceilings", "partition_rois", "partition_roi_asymmetry",
             "equivalence", "roi_prompts", "rl_baselines")


MAX_BARS = 8  # spaces drawn side by side per ROI


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return str(v)


def _baseline_models(res: Results) -> set[str]:
    """Names of the config's ``kind: baseline`` models (frame baselines: kind ``baseline`` in the spaces table,
    kind ``model`` in results written before that, which ``brainalign report`` still reads)."""
    return {m.name for m in res.experiment.models if m.kind == "baseline"}


def _model_spaces(res: Results) -> pd.Series:
    """Names of the fitted model feature spaces.

    Kind ``model`` in the spaces table, less the frame baselines of ``kind: baseline`` models (kind ``model`` in
    results written before they became kind ``baseline``) and the reference: a baseline reference would otherwise
    be its own "best model" and the report would have nothing to compare it with.
    """
    sp = res.tables["spaces"]
    names = sp.loc[(sp.kind == "model") & ~sp.model.isin(_baseline_models(res)), "space"]
    return names[names != res.experiment.analysis.reference]


def _best_spaces(res: Results, metric: str) -> tuple[str | None, pd.Series]:
    means = res.tables["run_scores"].groupby("space")[metric].mean()
    best = means.loc[means.index.isin(_model_spaces(res))]
    return (best.idxmax() if len(best) else None), means


def _unit(res: Results) -> str:
    """What one paired observation is: a held-out run, or a subject in a group report."""
    return "subjects" if res.manifest.get("data", {}).get("unit") == "subject" else "held-out runs"


def _headline(res: Results, metric: str) -> str:
    a = res.experiment.analysis
    best, means = _best_spaces(res, metric)
    comp = res.tables["comparisons"].set_index("space")
    unit = _unit(res)
    parts = []
    if best is not None:
        head = f"The best model feature space, {best}, scores {means[best]:.3f} ({metric})"
        if best in comp.index and a.reference in means.index:
            c = comp.loc[best]
            verb = "beats" if c.mean_diff > 0 else "does not beat"
            parts.append(
                f"{head} and {verb} {a.reference} ({means[a.reference]:.3f}): better in {int(c.n_better)} of "
                f"{int(c.n)} {unit} (paired Wilcoxon p = {_fmt(c.p_wilcoxon)}, d_z = {_fmt(c.cohen_dz)})."
            )
        else:
            parts.append(f"{head}; it was not compared with a reference.")
    for base in ("baseline/category", "baseline/category_shuffled"):
        if base in comp.index:
            c = comp.loc[base]
            parts.append(
                f"{base}: {means[base]:.3f}, better than {a.reference} in {int(c.n_better)}/{int(c.n)} {unit}."
            )
    ctl = res.tables.get("controls")
    if ctl is not None and len(ctl):
        held = int(ctl["survives"].astype(bool).sum())
        failed = [f"{r.effect} vs {r.control}" for r in ctl.itertuples(index=False) if not bool(r.survives)]
        parts.append(f"Controls: {held} of {len(ctl)} effects beat their control in a paired test over {unit}"
                     + (f"; not: {', '.join(failed)}." if failed else "."))
    return " ".join(parts) or "No model feature space was fitted."


def _paired_spaces(res: Results, metric: str, n_models: int = 3) -> list[str]:
    """The spaces of the per-run figure: the reference, the baselines (built-in ones and those of ``kind: baseline``
    models) and the best layer of the ``n_models`` best model × prompt pairs, the best model space first."""
    a = res.experiment.analysis
    t = res.tables
    best, means = _best_spaces(res, metric)
    models = set(_model_spaces(res))
    sp = t["spaces"][t["spaces"].space.isin(means.index)]
    others = sp.loc[(sp.kind == "baseline") | ((sp.kind == "model") & sp.model.isin(_baseline_models(res))), "space"]
    per_pair = [means.loc[means.index.isin(g.space)].idxmax()
                for _, g in sp[sp.space.isin(models)].groupby(["model", "prompt"], sort=True)]
    top = sorted(per_pair, key=lambda s: -means[s])[:n_models]
    names = [a.reference, "baseline/category_shuffled", "baseline/category", *others, best, *top]
    return list(dict.fromkeys(n for n in names if n is not None and n in means.index))


def _surface_maps(res: Results, metric: str) -> list[dict]:
    """Best score per vertex (FDR-thresholded when tested) and its difference to the reference, on the mesh."""
    surf = res.surface
    vox = res.tables["voxel_scores"]
    best, _ = _best_spaces(res, metric)
    ref = res.experiment.analysis.reference
    if best is None:
        return []
    args = (surf["vertices"], surf["n_vertices"], surf["space"])
    sub = vox[vox.space == best].sort_values("voxel")
    r = sub["r"].to_numpy(dtype=np.float64)
    if sub["p"].notna().any():
        shown = np.where(sub["significant"].to_numpy(dtype=bool), r, np.nan)
        a = res.experiment.analysis
        note = (f"only vertices significant at FDR q < {a.fdr_q} (block permutation test, {a.n_permutations} "
                f"permutations of {a.block_length}-TR blocks within runs, Benjamini–Hochberg) are coloured: "
                f"{int(np.isfinite(shown).sum())} of {r.size}.")
    else:
        shown, note = r, "no significance test was run (analysis.n_permutations = 0); all vertices are shown."
    finite = np.abs(r[np.isfinite(r)])
    png, drawn = figures.surface_map(shown, *args, title=f"r: {best} ({surf['space']})",
                                     vmax=float(finite.max()) if finite.size else None)
    out = [dict(title=f"r per vertex: {best}", png=_b64(png),
                how=f"How to read this: Pearson r of {best} at every vertex of {surf['space']} over all held-out TRs, "
                    f"inflated cortex seen from the side (lateral) and from the midline (medial), sulci dark; warm "
                    f"colours = well predicted; {note} {drawn}".strip())]
    if ref in set(vox.space) and ref != best:
        diff = r - vox[vox.space == ref].sort_values("voxel")["r"].to_numpy(dtype=np.float64)
        png, drawn = figures.surface_map(diff, *args, title=f"r difference: {best} − {ref}")
        out.append(dict(title=f"{best} minus {ref}", png=_b64(png),
                        how=f"How to read this: where {best} predicts better (warm) or worse (cool) than {ref}, "
                            f"every vertex (not thresholded). {drawn}".strip()))
    return out


def _maps(res: Results, metric: str) -> list[dict]:
    if "voxel_scores" not in res.tables:  # group results: maps are per subject
        return []
    if res.mask_img is None:
        return _surface_maps(res, metric) if getattr(res, "surface", None) else []
    vox = res.tables["voxel_scores"]
    best, _ = _best_spaces(res, metric)
    ref = res.experiment.analysis.reference
    out = []

    def vec(space):
        return vox[vox.space == space].sort_values("voxel")["r"].to_numpy(dtype=np.float32)

    if best is not None:
        sub = vox[vox.space == best].sort_values("voxel")
        r = sub["r"].to_numpy(dtype=np.float32)
        if sub["p"].notna().any():
            shown = np.where(sub["significant"].to_numpy(dtype=bool), r, np.nan).astype(np.float32)
            a = res.experiment.analysis
            note = (f"only voxels significant at FDR q < {a.fdr_q} (block permutation test, {a.n_permutations} "
                    f"permutations of {a.block_length}-TR blocks within runs, Benjamini–Hochberg) are coloured: "
                    f"{int(np.isfinite(shown).sum())} of {r.size}.")
        else:
            shown, note = r, "no significance test was run (analysis.n_permutations = 0); all voxels are shown."
        img = masking.unmask(shown, res.mask_img)
        out.append(dict(title=f"r per voxel: {best}", png=_b64(figures.brain_map(img, f"r: {best}", vmax=float(np.nanmax(np.abs(r))))),
                        how=f"How to read this: Pearson r of {best} in every voxel of the slice over all held-out "
                            f"TRs; warm colours = well predicted; {note}"))
        if res.mask_img.ndim >= 3 and res.mask_img.shape[2] > 3:
            out.append(dict(title=f"glass brain: {best}", png=_b64(figures.glass_brain(img, f"r: {best}")),
                            how=f"How to read this: the same map of {best} projected through the whole brain "
                                "(maximum along each axis); it shows where the coloured voxels lie in 3-D."))
        if ref in set(vox.space):
            diff = vec(best) - vec(ref)
            img = masking.unmask(diff, res.mask_img)
            out.append(dict(title=f"{best} minus {ref}",
                            png=_b64(figures.brain_map(img, f"r difference: best model − {ref}")),
                            how=f"How to read this: where {best} predicts better (warm) or worse (cool) than "
                                f"{ref}; category information should show up as warm voxels in visual cortex."))
    return out


def _partition_section(res: Results) -> dict | None:
    if "partition" not in res.tables or res.tables["partition"].empty:
        return None
    pct = res.tables["partition"]
    out = dict(bars=_b64(figures.partition_bars(pct)), maps=[], roi_bars="", asymmetry=[])
    by_roi = res.tables.get("partition_rois")
    if by_roi is not None and len(by_roi):  # where in the brain each unique part lies (row 2 of the gameplay study)
        spec = res.experiment.brain.rois
        order = list(spec.hierarchy) if spec is not None and spec.hierarchy else None
        unit = " (mean ± SEM over subjects)" if "sem" in by_roi else ""
        out["roi_bars"] = _b64(figures.partition_roi_bars(by_roi, order, unit=unit))
    asym = res.tables.get("partition_roi_asymmetry")
    if asym is not None and len(asym):  # the largest asymmetries first: where one space's unique part wins most
        shown = asym.sort_values("mean_diff", ascending=False, kind="stable").head(MAX_ROWS)
        out["asymmetry"] = [[r.partition, r.roi, r.a, r.b, _fmt(r.mean_a), _fmt(r.mean_b), _fmt(r.mean_diff),
                             f"{int(r.n_better)}/{int(r.n)}", _fmt(r.cohen_dz), _fmt(r.p_t), _fmt(r.p_wilcoxon)]
                            for r in shown.itertuples(index=False)]
        out["asymmetry_more"] = len(asym) - len(shown)
    table = pct.pivot_table(index=["partition", "part", "space"], columns="aggregation", values="percent",
                            sort=False).reset_index()
    n_vox = pct.groupby("partition")["n_voxels"].first()
    out["rows"] = [[r.partition, r.part, r.space, _fmt(r.ratio_of_means), _fmt(r.mean_of_ratios),
                    int(n_vox[r.partition])] for r in table.itertuples(index=False)]
    vox = res.tables.get("partition_voxels")
    surf = getattr(res, "surface", None)
    if vox is not None and (res.mask_img is not None or surf is not None):
        for name, g in vox.groupby("partition", sort=False):
            g = g.sort_values("voxel")
            legend = pct[pct.partition == name].drop_duplicates("part").set_index("part")["space"].to_dict()
            parts = list(legend)
            codes = np.array([parts.index(d) + 1 if d in parts else 0 for d in g["dominant"]], dtype=np.float32)
            labels = [f"{p}: {legend[p]}" for p in parts]
            if res.mask_img is not None:
                img = masking.unmask(codes, res.mask_img)
                png, note = figures.dominant_map(img, labels, f"dominant part: {name}"), ""
            else:
                png, note = figures.surface_codes_map(codes, surf["vertices"][g["voxel"].to_numpy()],
                                                      surf["n_vertices"], surf["space"], labels,
                                                      f"dominant part: {name}")
            out["maps"].append(dict(title=name, png=_b64(png), note=note))
    return out


def _roi_section(res: Results, metric: str) -> dict | None:
    t = res.tables
    comp = t.get("roi_comparisons")
    if comp is None or comp.empty:
        return None
    a = res.experiment.analysis
    spec = res.experiment.brain.rois
    means = t["run_scores"].groupby("space")[metric].mean()
    chosen = []
    sp = t["spaces"]
    models = sp[(sp.kind == "model") | ((sp.kind == "baseline") & sp.model.isin(_baseline_models(res)))]
    for _, g in models.groupby(["model", "prompt"], sort=True):  # every model's best layer and the frame baselines
        chosen.append(means.loc[means.index.isin(g.space)].idxmax())
    chosen_by = "model × prompt"
    if len(chosen) > MAX_BARS:  # too many bars to read per ROI: each model's best space (prompts: the heatmap)
        model_of = models.set_index("space")["model"]
        chosen = means.loc[chosen].groupby(model_of.loc[chosen].to_numpy()).idxmax().tolist()
        chosen_by = "model"
    how = spec.how if spec is not None else "mean"
    ceilings = t.get("roi_ceilings")
    ceilings = ceilings if ceilings is not None and {"roi", "ceiling"} <= set(ceilings.columns) else None
    out = dict(how=how, bars=_b64(figures.roi_bars(comp, chosen, a.reference, f"{how} r", ceilings)), curves="", peaks="",
               gain="", slopes=[], ceiling=ceilings is not None, prompts="", units=_unit(res), chosen_by=chosen_by,
               grid=figures.roi_grid_instead(comp["roi"].nunique(), len({*chosen, a.reference} & set(comp["space"]))))
    by_prompt = t.get("roi_prompts")
    if by_prompt is not None and len(by_prompt):  # the best instruction per ROI
        order = list(spec.hierarchy) if spec is not None and spec.hierarchy else None
        out["prompts"] = _b64(figures.roi_prompt_heatmap(by_prompt, order))
    n_vox = t["roi_scores"].groupby("roi", sort=False)["n_voxels"].max()
    out["rois"] = [dict(name=r, n=int(n)) for r, n in n_vox.items()]
    curves = t.get("roi_layers")
    if curves is not None and len(curves):
        out["curves"] = _b64(figures.roi_layer_curves(curves))
        pk = t.get("roi_peaks")
        pk = pk[~pk.model.isin(_baseline_models(res))] if pk is not None else None  # one layer: no peak to show
        if pk is not None and len(pk):  # one cell per ROI × model · prompt; the full table is a CSV download
            out["peaks"] = _b64(figures.roi_peak_grid(pk))
    slopes = t.get("roi_hierarchy")
    if slopes is not None and len(slopes) and spec is not None and spec.hierarchy:
        out["gain"] = _b64(figures.hierarchy_gain(t["roi_gain"], slopes, list(spec.hierarchy), a.unprompted))
        out["slopes"] = [dict(model=r.model, prompt=r.prompt, layer=r.layer, slope=_fmt(float(r.slope)),
                              t=_fmt(float(r.slope_t)), p=_fmt(float(r.slope_p)), ratio=_fmt(float(r.early_late_ratio)),
                              early=r.early, late=r.late) for r in slopes.itertuples(index=False)]
        out["hierarchy"] = " → ".join(spec.hierarchy)
    return out


CONTROL_KIND_LABELS = {
    "untrained": "same architecture, seeded random weights",
    "label_shuffled": "category labels shuffled among blocks within runs",
    "onoff": "stimulus on/off only",
    "scrambled": "same prompt words (same tokens) in a seeded random order",
    "neutral": "neutral prompt",
    "empty_instruction": "no instruction (the bare stimulus name); not length-matched by design",
    "stimulus_shuffled": "same features, stimulus → feature assignment permuted within each run",
    "gaussian": "random Gaussian vector per stimulus, same dimensionality",
    "in_context": "k worked examples before the same query, examples excluded from pooling (tokens include them)",
}


def _controls_section(res: Results) -> dict | None:
    ctl = res.tables.get("controls")
    if ctl is None or ctl.empty:
        return None
    rows = []
    for r in ctl.itertuples(index=False):
        tokens = (f"{r.tokens_effect:.1f} vs {r.tokens_control:.1f}"
                  if np.isfinite(r.tokens_effect) and np.isfinite(r.tokens_control) else "–")
        rows.append([r.effect, r.control, r.control_kind, _fmt(r.mean_effect), _fmt(r.mean_control),
                     _fmt(r.mean_diff), f"{int(r.n_better)}/{int(r.n)}", _fmt(r.p), "yes" if r.survives else "no",
                     tokens])
    spec = res.experiment.analysis.controls
    kinds = [dict(kind=k, meaning=CONTROL_KIND_LABELS.get(k, k)) for k in dict.fromkeys(ctl.control_kind)]
    return dict(png=_b64(figures.control_pairs(ctl)), rows=rows, kinds=kinds,
                alpha=spec.alpha if spec is not None else 0.05,
                tolerance=spec.max_token_difference if spec is not None else 5)


def _with_resolved_names(res: Results) -> Results:
    """A shallow copy whose config names the fitted spaces ('CLIP/none/L-1' → 'CLIP/none/L24')."""
    import copy


    out = copy.copy(res)
    analysis = resolved_names(res.experiment.analysis, res.tables["spaces"])
    out.experiment = res.experiment.model_copy(update=dict(analysis=analysis))
    return out


def _example_stimulus(st) -> str:
    """What '{stimulus}' becomes in the prompts table's example column (``st``: the config's stimuli section)."""
    if getattr(st, "labels", None):
        return st.labels[sorted(st.labels)[0]]
    return getattr(st, "name", "<item text>")


def _env() -> Environment:
    return Environment(loader=PackageLoader("brainalign", "report/templates"),
                       autoescape=select_autoescape(["html", "j2"]), keep_trailing_newline=True)


def render_report(res: Results, folder: str | Path | None = None) -> str:
    """The report as an HTML string (deterministic for equal results, apart from the creation time).

    ``folder`` is where the results lie; steering tables found there (``brainalign steer``'s ``nari.csv`` or
    alike) add a steering section.
    """
    from brainalign.report.steering import steering_section

    res = _with_resolved_names(res)
    exp = res.experiment
    metric = exp.analysis.metric
    t = res.tables
    fig = dict(
        layers=_b64(figures.layer_curves(t["layers"], t["run_scores"], metric)) if len(t["layers"]) else "",
        bars=_b64(figures.space_bars(t["run_scores"], t["comparisons"], t["spaces"], metric)),
        gain=_b64(figures.prompt_gain(t["prompt_gain"], exp.analysis.unprompted)) if "prompt_gain" in t and len(t["prompt_gain"]) else "",
    )
    fig["paired"] = _b64(figures.paired_runs(t["run_scores"], _paired_spaces(res, metric), metric))

    comp = t["comparisons"].copy()
    cols = ["space", "mean", "mean_diff", "sem_diff", "n_better", "n", "cohen_dz", "p_wilcoxon", "p_t"]
    comp = comp[[c for c in cols if c in comp]]
    shown = comp.sort_values("mean", ascending=False, kind="stable").head(MAX_ROWS) if "mean" in comp else comp
    rows = [[_fmt(v) for v in r] for r in shown.itertuples(index=False)]
    extras = [dict(sec, png=_b64(sec["png"])) if "png" in sec else sec for sec in extra_sections(res)]
    tables = dict.fromkeys([*DOWNLOADS, *(sec["table"] for sec in extras)])

    prompts = []
    models_meta = res.manifest.get("models", {})
    for name, template in exp.prompts.items():
        tokens = [m.get("n_tokens", {}).get(name) for m in models_meta.values()]
        tokens = [n for lst in tokens if lst for n in lst]
        example = template.format(stimulus=_example_stimulus(exp.stimuli))
        prompts.append(dict(name=name, template=template, example=example,
                            tokens=f"{min(tokens)}–{max(tokens)}" if tokens else "–"))

    data = res.manifest.get("data", {})
    surface = getattr(res, "surface", None)
    html = _env().get_template("report.html.j2").render(
        unit="vertex" if surface else "voxel", surface_space=surface["space"] if surface else None,
        steering=steering_section(folder) if folder is not None else None,
        name=exp.name, version=res.manifest.get("brainalign_version", ""), created=res.manifest.get("created", ""),
        seed=exp.seed, config_hash=res.manifest.get("config_hash", exp.config_hash()),
        subject=data.get("subject") or exp.brain.subject,
        group_subjects=data.get("subjects") if data.get("unit") == "subject" else None,
        n_trs=data.get("n_trs"), n_voxels=data.get("n_voxels"), tr=exp.brain.tr,
        headline=_headline(res, metric), fig=fig, maps=_maps(res, metric), metric_label=METRIC_LABELS[metric],
        reference=exp.analysis.reference, unprompted=exp.analysis.unprompted,
        comparison_cols=list(comp.columns), comparison_rows=rows, comparison_more=len(comp) - len(shown),
        csv_name=f"{exp.name}-scores.csv", csv_b64=_b64(res.to_frame().to_csv(index=False).encode()),
        downloads=[dict(name=f"{name}.csv", b64=_b64(t[name].to_csv(index=False).encode())) for name in tables
                   if name in t and len(t[name])],
        prompts=prompts, partition=_partition_section(res), controls=_controls_section(res),
        rois=_roi_section(res, metric), extras=extras, config_yaml=exp.to_yaml(), inputs=res.manifest.get("inputs", {}),
        versions=res.manifest.get("versions", {}), timings=res.manifest.get("timings_s", {}),
    )
    return _with_contents(html)


_H2 = re.compile(r"<h2>(.*?)</h2>")


def _with_contents(html: str) -> str:
    """Add a line of links to every section (``<h2>``) right after the headline, so a reader sees at once which
    figures the report holds and jumps to one. Each ``<h2>`` gets an anchor in front of it (its text is kept)."""
    titles = _H2.findall(html)
    if len(titles) < 2 or '<div class="headline">' not in html:
        return html
    count = iter(range(1, len(titles) + 1))
    html = _H2.sub(lambda m: f'<a class="anchor" id="sec-{next(count)}"></a><h2>{m.group(1)}</h2>', html)
    links = " · ".join(f'<a href="#sec-{i}">{t}</a>' for i, t in enumerate(titles, 1))
    head_end = html.index("</div>", html.index('<div class="headline">')) + len("</div>")
    return f'{html[:head_end]}\n<nav class="contents"><strong>Contents.</strong> {links}</nav>{html[head_end:]}'


def write_report(res: Results, out_dir: str | Path) -> Path:
    """Write ``report.html`` into ``out_dir`` (atomically) and return its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, render_report(res, out_dir))
    return path


def render_steering_report(folder: str | Path) -> str:
    """The report of a ``brainalign steer`` output folder (steering tables and its manifest only).

    Raises
    ------
    FileNotFoundError
        When ``folder`` holds no steering table.
    """
    import json

    import yaml

    from brainalign.report.steering import steering_section

    folder = Path(folder)
    section = steering_section(folder)
    if section is None:
        raise FileNotFoundError(f"{folder} holds neither brainalign results (manifest.json, run_scores.parquet) nor "
                                "steering tables (a CSV with a 'condition' column and flip or accuracy columns, as "
                                "`brainalign steer` writes); pass a folder written by `brainalign run` or `steer`.")
    try:
        man = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        man = {}
    cfg = man.get("config")
    return _env().get_template("steering.html.j2").render(
        name=man.get("name", folder.name), source=man.get("source", "unknown source"), seed=man.get("seed", "–"),
        nari_layers=man.get("nari_layers") or [], steering=section,
        config_yaml=yaml.safe_dump(cfg, sort_keys=False) if cfg else "(no manifest.json)",
        versions=man.get("versions", {}), timings=man.get("timings_s", {}),
    )


def write_steering_report(folder: str | Path) -> Path:
    """Write ``report.html`` of a steering output folder (atomically) and return its path."""
    path = Path(folder) / "report.html"
    atomic_write_text(path, render_steering_report(folder))
    return path
