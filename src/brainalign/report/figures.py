"""Figures of the report, drawn with matplotlib (Agg) and nilearn.

Every function takes tidy tables and returns a PNG as bytes, so figures are
deterministic (no timestamps in the file) and easy to embed or test.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

__all__ = [
    "png_bytes",
    "layer_curves",
    "space_bars",
    "paired_runs",
    "prompt_gain",
    "brain_map",
    "significance_stars",
    "partition_bars",
    "partition_roi_bars",
    "dominant_map",
    "control_pairs",
    "roi_bars",
    "roi_layer_curves",
    "roi_peak_grid",
    "roi_prompt_heatmap",
    "roi_normalised_bars",
    "hierarchy_gain",
    "equivalence_intervals",
    "arm_bars",
    "coupling_scatter",
    "rl_baseline_differences",
    "glass_brain",
    "FSAVERAGE_VERTICES",
    "hemisphere_values",
    "surface_map",
    "surface_codes_map",
    "steering_bars",
    "predictivity_curves",
]

CEILING_COLOR = "#e6d8b8"  # noise-ceiling band behind ROI bars
BASELINE_STYLE = {"baseline/onoff": ("0.35", "--"), "baseline/category": ("tab:green", ":"),
                  "baseline/category_shuffled": ("tab:red", "-.")}


def png_bytes(fig) -> bytes:
    """Render and close ``fig``; metadata stripped so equal figures give equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def significance_stars(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "n.s."


def _run_mean(run_scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    g = run_scores.groupby("space")[metric]
    return pd.DataFrame(dict(mean=g.mean(), sem=g.sem()))


MODEL_CMAPS = ("Blues", "Oranges", "Greens", "Purples", "Reds", "Greys", "YlOrBr", "BuGn")


def _model_prompt_colours(table: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    """One hue per model, one shade of it per prompt: with many prompts the lines of a model stay together and no
    two lines share a colour (tab10 repeats after ten)."""
    out = {}
    pairs = table[["model", "prompt"]].drop_duplicates().sort_values(["model", "prompt"])
    for i, (model, g) in enumerate(pairs.groupby("model", sort=True)):
        cmap = plt.get_cmap(MODEL_CMAPS[i % len(MODEL_CMAPS)])
        shades = np.linspace(0.9, 0.45, len(g)) if len(g) > 1 else [0.75]
        out.update({(model, prompt): cmap(x) for prompt, x in zip(g["prompt"], shades)})
    return out


def layer_curves(layers: pd.DataFrame, run_scores: pd.DataFrame, metric: str) -> bytes:
    """Score per layer (normalised depth) for each model × prompt, ±SEM over held-out runs; baselines as lines."""
    fig, ax = plt.subplots(figsize=(7, 4))
    colour = _model_prompt_colours(layers)
    for (model, prompt), g in layers.groupby(["model", "prompt"], sort=True):
        g = g.sort_values("depth")
        (line,) = ax.plot(g["depth"], g["mean"], marker="o", label=f"{model} · {prompt}", color=colour[model, prompt])
        ax.fill_between(g["depth"], g["mean"] - g["sem"], g["mean"] + g["sem"], color=line.get_color(), alpha=0.15)
        peak = g.loc[g["mean"].idxmax()]
        ax.plot([peak["depth"]], [peak["mean"]], marker="*", ms=14, color=line.get_color(), mec="k")
    summary = _run_mean(run_scores, metric)
    for name, (color, ls) in BASELINE_STYLE.items():
        if name in summary.index:
            ax.axhline(summary.loc[name, "mean"], color=color, ls=ls, lw=1.5, label=name)
    ax.set_xlabel("layer depth (layer / number of blocks; 0 = embeddings)")
    ax.set_ylabel(f"{metric} (held-out runs)")
    ax.set_title("Encoding score along the model's depth (★ = peak layer)")
    n_lines = len(ax.get_legend_handles_labels()[1])
    if n_lines > 8:  # beside the axes, not over the lines
        ncol = -(-n_lines // 24)
        fig.set_size_inches(7 + 2.2 * ncol, 4)
        ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.02, 1), ncol=ncol, frameon=False)
    else:
        ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def space_bars(run_scores: pd.DataFrame, comparisons: pd.DataFrame, spaces: pd.DataFrame, metric: str) -> bytes:
    """Best layer per model × prompt and every baseline, mean ± SEM over runs, stars vs the reference."""
    summary = _run_mean(run_scores, metric)
    chosen = []
    models = spaces[spaces.kind == "model"]
    for _, g in models.groupby(["model", "prompt"], sort=True):
        chosen.append(summary.loc[g.space].sort_values("mean").index[-1])
    chosen += sorted(spaces[spaces.kind == "baseline"].space)
    pvals = comparisons.set_index("space")["p_wilcoxon"] if len(comparisons) else pd.Series(dtype=float)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(chosen) + 1.2))
    y = np.arange(len(chosen))
    colors = ["tab:blue" if not c.startswith("baseline/") else "0.6" for c in chosen]
    ax.barh(y, summary.loc[chosen, "mean"], xerr=summary.loc[chosen, "sem"], color=colors, capsize=3)
    for yi, name in zip(y, chosen):
        star = significance_stars(pvals.get(name, np.nan))
        if star:
            ax.text(summary.loc[name, "mean"] + summary.loc[name, "sem"] + 0.005, yi, star, va="center", fontsize=8)
    ax.set_yticks(y, chosen, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{metric} (mean ± SEM over held-out runs)")
    ax.set_title("Best layer per prompt vs baselines (stars: paired Wilcoxon vs reference)")
    ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)


def paired_runs(run_scores: pd.DataFrame, names: list[str], metric: str) -> bytes:
    """One line per held-out run across the named spaces: shows how consistent a difference is."""
    wide = run_scores.pivot(index="run", columns="space", values=metric)[names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(names) + 1.5), 4))
    x = np.arange(len(names))
    for run, row in wide.iterrows():
        ax.plot(x, row.to_numpy(), color="0.6", lw=1, marker="o", ms=3)
    ax.plot(x, wide.mean().to_numpy(), color="k", lw=2.5, marker="o", label="mean over runs")
    ax.set_xticks(x, [n.replace("/", "/\n", 1) for n in names], fontsize=8, rotation=30 if len(names) > 6 else 0)
    ax.set_ylabel(metric)
    ax.set_title("Each held-out run (grey) across feature spaces")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def _gain_label(unprompted: str | None) -> str:
    return f"gain over the '{unprompted}' prompt" if unprompted else "gain over unprompted"


def prompt_gain(gain: pd.DataFrame, unprompted: str | None = None) -> bytes:
    """Prompted minus unprompted score per layer, mean ± SEM over runs.

    ``unprompted`` is the configured reference prompt (``analysis.unprompted``) named on the y axis.
    """
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for (model, prompt), g in gain.groupby(["model", "prompt"], sort=True):
        g = g.sort_values("depth")
        ax.errorbar(g["depth"], g["mean_diff"], yerr=g["sem_diff"], marker="o", capsize=3, label=f"{model} · {prompt}")
    ax.axhline(0, color="k", lw=1)
    ax.set_xlabel("layer depth")
    ax.set_ylabel(_gain_label(unprompted))
    ax.set_title("Prompt-driven gain per layer")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def brain_map(img, title: str, vmax: float | None = None, cmap: str = "cold_hot") -> bytes:
    """A voxel map on its own grid (nilearn ``plot_stat_map``), every slice of a thin volume shown."""
    from nilearn import plotting

    import nibabel as nib

    data = np.asarray(img.dataobj, dtype=float)
    finite = data[np.isfinite(data)]
    vmax = vmax or (float(np.abs(finite).max()) if finite.size else 1.0)
    # NaN (outside the mask, or not significant) is drawn transparent: zero it and threshold just above zero
    img = nib.Nifti1Image(np.nan_to_num(data, nan=0.0).astype(np.float32), img.affine)
    n_z = img.shape[2]
    fig = plt.figure(figsize=(6, 3.2))
    if n_z <= 3:
        cuts = [float((img.affine @ [0, 0, k, 1])[2]) for k in range(n_z)]
        plotting.plot_stat_map(img, bg_img=None, display_mode="z", cut_coords=cuts, figure=fig, title=title,
                               vmax=vmax, cmap=cmap, colorbar=True, black_bg=False, annotate=False, draw_cross=False,
                               threshold=1e-6)
    else:
        plotting.plot_stat_map(img, bg_img=None, figure=fig, title=title, vmax=vmax, cmap=cmap, colorbar=True,
                               black_bg=False, threshold=1e-6)
    return png_bytes(fig)


def partition_bars(pct: pd.DataFrame, aggregation: str = "ratio_of_means") -> bytes:
    """Stacked bars per partition: unique parts and shared, % of the joint model's R²; negatives drawn below 0."""
    sub = pct[pct.aggregation == aggregation]
    names = list(dict.fromkeys(sub.partition))
    fig, ax = plt.subplots(figsize=(7, 0.9 * len(names) + 1.6))
    colors = plt.get_cmap("tab10")
    for yi, name in enumerate(names):
        rows = sub[sub.partition == name].reset_index(drop=True)
        pos = neg = 0.0
        for j, row in rows.iterrows():
            v = float(row.percent)
            left = pos if v >= 0 else neg + v
            ax.barh(yi, v if v >= 0 else -v, left=left, color=colors(j), edgecolor="k",
                    label=f"{row.part}: {row.space}")
            ax.text(left + abs(v) / 2, yi, f"{v:.1f}%", ha="center", va="center", fontsize=7)
            pos, neg = (pos + v, neg) if v >= 0 else (pos, neg + v)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=1)
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel(f"% of the joint model's held-out R² ({aggregation.replace('_', ' ')})")
    ax.set_title("Variance partitioning (negative parts drawn left of 0)")
    return png_bytes(fig)


def partition_roi_bars(pct: pd.DataFrame, rois: list[str] | None = None, aggregation: str = "ratio_of_means",
                       unit: str = "") -> bytes:
    """One panel per partition: every part's % of the joint R² in each ROI (grouped bars, ± SEM over subjects
    when ``pct`` has a ``sem`` column), so that where a unique part is large or negative reads at a glance.

    ``pct``: a ``partition_rois`` table (one subject's, or the group's with ``sem``); ``rois``: order of the x axis
    (e.g. ``brain.rois.hierarchy``; default: the table's order).
    """
    sub = pct[pct.aggregation == aggregation]
    names = list(dict.fromkeys(sub.partition))
    rois = [r for r in (rois or list(dict.fromkeys(sub.roi))) if r in set(sub.roi)]
    fig, axes = plt.subplots(len(names), 1, figsize=(max(6.0, 0.55 * len(rois) + 2), 2.6 * len(names) + 0.6),
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    x = np.arange(len(rois))
    for ax, name in zip(axes[:, 0], names):
        g = sub[sub.partition == name]
        parts = list(dict.fromkeys(g.part))
        width = 0.8 / len(parts)
        for j, part in enumerate(parts):
            rows = g[g.part == part].set_index("roi").reindex(rois)
            err = np.nan_to_num(rows["sem"].to_numpy(dtype=float)) if "sem" in rows else None
            ax.bar(x - 0.4 + width * (j + 0.5), rows["percent"].to_numpy(dtype=float), width, yerr=err,
                   capsize=2, color=colors(j), edgecolor="k", lw=0.5, label=f"{part}: {rows['space'].dropna().iloc[0]}"
                   if rows["space"].notna().any() else part)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x, rois, fontsize=7, rotation=30 if len(rois) > 6 else 0)
        ax.set_ylabel("% of joint R²", fontsize=8)
        ax.set_title(f"{name}{unit}", fontsize=9)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return png_bytes(fig)


def dominant_map(img_codes, labels: list[str], title: str) -> bytes:
    """Map of the dominant partition part per voxel (integer codes → colours, legend with names)."""
    from matplotlib.patches import Patch

    data = np.asarray(img_codes.dataobj, dtype=float)[:, :, 0]
    cmap = plt.get_cmap("tab10")
    rgba = np.ones(data.shape + (4,))
    rgba[..., 3] = 0.0
    for code in range(len(labels)):
        rgba[data == code + 1] = cmap(code)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.imshow(np.transpose(rgba, (1, 0, 2)), origin="lower", interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    ax.legend([Patch(color=cmap(i)) for i in range(len(labels))], labels, fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.02), ncol=1)
    return png_bytes(fig)


def control_pairs(controls: pd.DataFrame) -> bytes:
    """Effect minus control per pair, mean ± SEM over held-out runs; filled = survives its control.

    Each bar is labelled ``effect  vs  control`` and annotated with the runs
    where the effect won and the paired Wilcoxon p.
    """
    n = len(controls)
    fig, ax = plt.subplots(figsize=(8, 0.42 * n + 1.4))
    y = np.arange(n)
    colors = plt.get_cmap("tab10")
    kinds = list(dict.fromkeys(controls["control_kind"]))
    for yi, row in zip(y, controls.itertuples(index=False)):
        c = colors(kinds.index(row.control_kind) % 10)
        ax.barh(yi, row.mean_diff, xerr=row.sem_diff if np.isfinite(row.sem_diff) else 0, capsize=3,
                color=c if row.survives else "white", edgecolor=c, hatch=None if row.survives else "//")
        p = row.p if np.isfinite(row.p) else np.nan
        ax.text(1.01, yi, f"{int(row.n_better)}/{int(row.n)} runs, p={p:.2g}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=7)
    labels = [f"{r.effect}  vs  {r.control}" for r in controls.itertuples(index=False)]
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=1)
    ax.set_xlabel("effect − control (mean ± SEM over held-out runs)")
    ax.set_title("Each effect against its control (filled: effect wins, paired Wilcoxon p < alpha)", fontsize=9)
    from matplotlib.patches import Patch

    ax.legend([Patch(color=colors(i % 10)) for i in range(len(kinds))], kinds, fontsize=7, loc="upper center",
              bbox_to_anchor=(0.5, -0.9 / max(n, 1) - 0.08), ncol=4)
    ax.grid(axis="x", alpha=0.3)
    return png_bytes(fig)


MAX_GROUPED_BARS = 48  # above this many bars (ROIs × spaces), roi_bars draws a grid of numbers instead


def roi_grid_instead(n_rois: int, n_spaces: int) -> bool:
    """Whether :func:`roi_bars` draws its grid of numbers (too many bars to read side by side)."""
    return n_rois * n_spaces > MAX_GROUPED_BARS


def _roi_grid(t: pd.DataFrame, rois: list[str], names: list[str], reference: str, metric: str,
              ceilings: pd.DataFrame | None) -> bytes:
    """ROI × space grid of mean scores (the same numbers as roi_bars' bars), each cell annotated with its value and
    its star against the reference, the ROI's noise ceiling as a last column when given: many ROIs and spaces stay
    readable at the page's width."""
    grid = np.array([[t.loc[(r, n), "mean"] for n in names] for r in rois], dtype=float)
    if ceilings is not None and len(ceilings):
        ceil = ceilings.drop_duplicates("roi").set_index("roi")["ceiling"]
        grid = np.column_stack([grid, [float(ceil.get(r, np.nan)) for r in rois]])
        names = [*names, "noise ceiling"]
    fig, ax = plt.subplots(figsize=(0.85 * len(names) + 2.8, 0.38 * len(rois) + 1.8))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    for i, r in enumerate(rois):
        for j, n in enumerate(names):
            star = "" if n in (reference, "noise ceiling") else significance_stars(t.loc[(r, n), "p_wilcoxon"])
            star = "" if star == "n.s." else star
            ax.text(j, i, f"{grid[i, j]:.2f}{star}", ha="center", va="center", fontsize=6.5,
                    color="w" if grid[i, j] < np.nanmean(grid) else "k")
    ax.set_xticks(range(len(names)), [f"{n} (ref.)" if n == reference else n for n in names], rotation=40,
                  ha="right", fontsize=7)
    ax.set_yticks(range(len(rois)), rois, fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02).set_label(f"{metric} (mean over held-out runs)", fontsize=7)
    ax.set_title(f"Scores per ROI, best layer per space (stars: paired Wilcoxon vs {reference})", fontsize=9)
    return png_bytes(fig)


def roi_bars(comparisons: pd.DataFrame, chosen: list[str], reference: str, metric: str,
             ceilings: pd.DataFrame | None = None) -> bytes:
    """Grouped bars per ROI: the chosen spaces and the reference, mean ± SEM over held-out runs, stars vs reference.

    ``comparisons`` is the ``roi_comparisons`` table (space, roi, mean, sem, p_wilcoxon). ``ceilings`` (optional,
    the ``roi_ceilings`` table: roi, ceiling and optionally ceiling_low, ceiling_high, in the bars' unit) is drawn
    behind each ROI's bars: a sand-coloured band from low to high with a dashed line at the ceiling.
    """
    rois = list(dict.fromkeys(comparisons["roi"]))
    names = [n for n in dict.fromkeys([*chosen, reference]) if n in set(comparisons["space"])]
    t = comparisons.set_index(["roi", "space"])
    if roi_grid_instead(len(rois), len(names)):
        return _roi_grid(t, rois, names, reference, metric, ceilings)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rois) * max(len(names), 1) * 0.45 + 2), 4))
    colors = plt.get_cmap("tab10")
    x = np.arange(len(rois))
    for j, name in enumerate(names):
        mean = np.array([t.loc[(r, name), "mean"] for r in rois], dtype=float)
        err = np.nan_to_num(np.array([t.loc[(r, name), "sem"] for r in rois], dtype=float))
        xs = x - 0.4 + width * (j + 0.5)
        ax.bar(xs, mean, width, yerr=err, capsize=2, label=name,
               color="0.6" if name == reference else colors(j % 10))
        if name != reference:
            for xi, r, m, e in zip(xs, rois, mean, err):
                star = significance_stars(t.loc[(r, name), "p_wilcoxon"])
                if star:
                    ax.text(xi, m + e + 0.005 if m >= 0 else e + 0.005, star, ha="center", va="bottom", fontsize=7)
    if ceilings is not None and len(ceilings):
        ceil = ceilings.drop_duplicates("roi").set_index("roi")
        labelled = False
        for xi, r in zip(x, rois):
            if r not in ceil.index or not np.isfinite(float(ceil.loc[r, "ceiling"])):
                continue
            c = float(ceil.loc[r, "ceiling"])
            lo = float(ceil.loc[r, "ceiling_low"]) if "ceiling_low" in ceil else c
            hi = float(ceil.loc[r, "ceiling_high"]) if "ceiling_high" in ceil else c
            lo, hi = (c, c) if not (np.isfinite(lo) and np.isfinite(hi)) else (lo, hi)
            ax.fill_between([xi - 0.45, xi + 0.45], [lo, lo], [hi, hi], color=CEILING_COLOR, zorder=0, lw=0,
                            label=None if labelled else "noise ceiling")
            labelled = True
            ax.plot([xi - 0.45, xi + 0.45], [c, c], color="0.3", ls="--", lw=1.2, zorder=0.5)
    ax.set_xticks(x, rois, fontsize=8, rotation=30 if len(rois) > 6 else 0)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel(f"{metric} in the ROI (mean ± SEM over held-out runs)", fontsize=8)
    ax.set_title(f"Scores per ROI, best layer per prompt (stars: paired Wilcoxon vs {reference})", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return png_bytes(fig)


def roi_layer_curves(curves: pd.DataFrame) -> bytes:
    """One panel per ROI: score per layer depth for each model × prompt, ±SEM over runs, ★ at the peak layer."""
    rois = list(dict.fromkeys(curves["roi"]))
    n = len(rois)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), sharex=True, squeeze=False)
    colors = plt.get_cmap("tab10")
    keys = sorted({(m, p) for m, p in zip(curves["model"], curves["prompt"])})
    for ax, roi in zip(axes.ravel(), rois):
        sub = curves[curves["roi"] == roi]
        for k, (model, prompt) in enumerate(keys):
            g = sub[(sub["model"] == model) & (sub["prompt"] == prompt)].sort_values("depth")
            if g.empty:
                continue
            c = colors(k % 10)
            ax.plot(g["depth"], g["mean"], marker="o", ms=3, color=c, label=f"{model} · {prompt}")
            sem = np.nan_to_num(g["sem"].to_numpy(dtype=float))
            ax.fill_between(g["depth"], g["mean"] - sem, g["mean"] + sem, color=c, alpha=0.15)
            pk = g[g["is_peak"].astype(bool)]
            ax.plot(pk["depth"], pk["mean"], marker="*", ms=12, color=c, mec="k", ls="none")
        ax.set_title(str(roi), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("layer depth", fontsize=8)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=min(len(labels), 4), bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("Encoding score along the model's depth, per ROI (★ = peak layer)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return png_bytes(fig)


def roi_peak_grid(peaks: pd.DataFrame) -> bytes:
    """ROI × model · prompt grid of the peak layer (the ``roi_peaks`` table): colour = peak depth (0 = embeddings,
    1 = last block), text = peak layer. Replaces a long table with one row per model × prompt × ROI."""
    rois = list(dict.fromkeys(peaks["roi"]))
    cols = sorted({(m, p) for m, p in zip(peaks["model"], peaks["prompt"])})
    t = peaks.set_index(["roi", "model", "prompt"])
    depth = np.full((len(rois), len(cols)), np.nan)
    layer = np.full((len(rois), len(cols)), np.nan)
    for i, roi in enumerate(rois):
        for j, (m, p) in enumerate(cols):
            if (roi, m, p) in t.index:
                row = t.loc[(roi, m, p)]
                row = row.iloc[0] if isinstance(row, pd.DataFrame) else row
                depth[i, j], layer[i, j] = float(row["peak_depth"]), float(row["peak_layer"])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(cols) + 2.5), 0.32 * len(rois) + 1.8))
    im = ax.imshow(np.ma.masked_invalid(depth), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(len(rois)):
        for j in range(len(cols)):
            if np.isfinite(layer[i, j]):
                ax.text(j, i, f"{int(layer[i, j])}", ha="center", va="center", fontsize=7,
                        color="w" if depth[i, j] < 0.6 else "k")
    ax.set_xticks(range(len(cols)), [f"{m} · {p}" for m, p in cols], fontsize=7, rotation=45, ha="right")
    ax.set_yticks(range(len(rois)), rois, fontsize=7)
    fig.colorbar(im, ax=ax, label="peak depth (layer / blocks)", shrink=0.8)
    ax.set_title("Peak layer per ROI (number = layer, colour = depth)", fontsize=9)
    return png_bytes(fig)


def roi_prompt_heatmap(table: pd.DataFrame, rois: list[str] | None = None, max_panels: int = 6) -> bytes:
    """ROI × prompt heatmaps of the ``roi_prompts`` table, one panel per model (its deepest layer read), the best
    prompt of each ROI boxed and starred: which instruction each region prefers, at a glance.

    ``rois``: row order (e.g. the hierarchy; default the table's order).
    """
    deepest = table.groupby("model")["layer"].transform("max") == table["layer"]
    t = table[deepest]
    models = list(dict.fromkeys(t["model"]))[:max_panels]
    rois = [r for r in (rois or list(dict.fromkeys(t["roi"]))) if r in set(t["roi"])]
    # each panel shows its model's own prompts (models may read different subsets); panels in rows of two
    own = {m: list(dict.fromkeys(t.loc[t["model"] == m, "prompt"])) for m in models}
    ncols = min(2, len(models))
    nrows = -(-len(models) // ncols)
    widest = max(len(p) for p in own.values())
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * (0.5 * widest + 2.6), nrows * (0.4 * len(rois) + 1.6)),
                             squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        g = t[t["model"] == model]
        prompts = own[model]
        grid = g.pivot(index="roi", columns="prompt", values="value").reindex(index=rois, columns=prompts)
        im = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis")
        for i, roi in enumerate(rois):
            best = g[(g["roi"] == roi) & g["is_best"]]["prompt"]
            for p in best:
                j = prompts.index(p)
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="w", lw=2))
                ax.text(j, i, "★", ha="center", va="center", color="w", fontsize=9)
        ax.set_xticks(range(len(prompts)), prompts, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(rois)), rois, fontsize=7)
        ax.set_title(f"{model} (layer {int(g['layer'].iloc[0])})", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02).ax.tick_params(labelsize=6)
    fig.suptitle("Score per ROI and prompt (★ best prompt of the ROI)", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def roi_normalised_bars(table: pd.DataFrame, spaces: list[str], rois: list[str] | None = None) -> bytes:
    """Ceiling-normalised score per ROI (mean over the ROI's voxels with a defined ceiling) for a few spaces.

    ``table``: the ``roi_normalised`` table; ``spaces``: the spaces to draw (e.g. each model's best).
    """
    rois = [r for r in (rois or list(dict.fromkeys(table["roi"]))) if r in set(table["roi"])]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rois) + 2), 3.6))
    width = 0.8 / max(len(spaces), 1)
    x = np.arange(len(rois))
    colors = plt.get_cmap("tab10")
    for j, space in enumerate(spaces):
        v = table[table.space == space].set_index("roi").reindex(rois)["mean_normalised"].to_numpy(dtype=float)
        ax.bar(x - 0.4 + width * (j + 0.5), v, width, color=colors(j % 10), edgecolor="k", lw=0.5, label=space)
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set_xticks(x, rois, fontsize=8, rotation=30 if len(rois) > 6 else 0)
    ax.set_ylabel("r / noise ceiling", fontsize=8)
    ax.set_title("Ceiling-normalised scores per ROI (dashed: the ceiling)", fontsize=10)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


def hierarchy_gain(gain: pd.DataFrame, slopes: pd.DataFrame, hierarchy: list[str],
                   unprompted: str | None = None) -> bytes:
    """Prompt-driven gain per ROI in hierarchy order (mean ± SEM over runs), slope and early/late ratio in the legend;
    ``unprompted`` (``analysis.unprompted``) is named on the y axis."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.arange(len(hierarchy))
    for k, row in enumerate(slopes.itertuples(index=False)):
        g = gain[(gain["model"] == row.model) & (gain["prompt"] == row.prompt) & (gain["layer"] == row.layer)]
        stats = g.groupby("roi")["gain"].agg(["mean", "sem"]).reindex(hierarchy)
        ax.errorbar(x + 0.05 * k, stats["mean"], yerr=np.nan_to_num(stats["sem"].to_numpy(dtype=float)), marker="o",
                    capsize=3, label=f"{row.model} · {row.prompt} (L{row.layer}): slope {row.slope:+.3f}/level, "
                                     f"early/late ratio {row.early_late_ratio:.2f}")
    ax.axhline(0, color="k", lw=1)
    ax.set_xticks(x, hierarchy, fontsize=8, rotation=30 if len(hierarchy) > 6 else 0)
    ax.set_xlabel("cortical hierarchy (early → late)")
    ax.set_ylabel(f"prompted − '{unprompted}' score" if unprompted else "prompted − unprompted score")
    ax.set_title("Prompt-driven gain along the hierarchy", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def equivalence_intervals(table: pd.DataFrame) -> bytes:
    """Each equivalence test's mean difference a − b with its 1 − 2α interval over the ±margin band (TOST).

    ``table``: the ``equivalence`` table (:func:`brainalign.analysis.equivalence.equivalence_table`). An interval
    wholly inside its band is equivalence at level α; the legend of each row gives p_TOST and the two-sided p of a
    difference.
    """
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.7 * len(table)))
    y = np.arange(len(table))[::-1]
    for yi, row in zip(y, table.itertuples(index=False)):
        ax.fill_betweenx([yi - 0.35, yi + 0.35], -row.margin, row.margin, color=CEILING_COLOR, lw=0)
        color = "tab:green" if row.equivalent else "tab:red"
        if np.isfinite(row.ci_low):
            ax.plot([row.ci_low, row.ci_high], [yi, yi], color=color, lw=3, solid_capstyle="butt")
        ax.plot([row.mean_diff], [yi], "o", color="k", ms=5)
        verdict = "equivalent" if row.equivalent else "not shown equivalent"
        ax.annotate(f"{verdict}: p_TOST {row.p_tost:.3g}, p_diff {row.p_difference:.3g} (n={row.n} {row.unit}s)",
                    (1.0, yi), xycoords=("axes fraction", "data"), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [f"{r.name}\n{r.a}\nvs {r.b}" if len(r.a) + len(r.b) < 60 else r.name
                      for r in table.itertuples(index=False)], fontsize=7)
    ax.set_ylim(-0.7, len(table) - 0.3)
    ax.set_xlabel(f"mean difference a − b ({table['metric'].iloc[0]}); band: ± margin, bar: {1 - 2 * table['alpha'].iloc[0]:.0%} CI")
    ax.set_title("Equivalence tests (TOST)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return png_bytes(fig)


def arm_bars(scores: pd.DataFrame, comparisons: pd.DataFrame) -> bytes:
    """Each arm's score (mean over units, one line per unit joining the arms) with the first arm's gain over each
    other arm and its paired p (row 6 of the video-audio study).

    ``scores``: the ``arm_scores`` table (arm, run, value, unit); ``comparisons``: ``arm_comparisons``.
    """
    arms = list(dict.fromkeys(scores["arm"]))
    wide = scores.pivot_table(index="run", columns="arm", values="value", aggfunc="first").reindex(columns=arms)
    unit = str(scores["unit"].iloc[0]) if "unit" in scores else "run"
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(arms) + 1.5), 3.8))
    x = np.arange(len(arms))
    means = wide.mean(axis=0).to_numpy(dtype=float)
    ax.bar(x, means, 0.6, color=["tab:orange"] + ["0.7"] * (len(arms) - 1), edgecolor="k", lw=0.5)
    for _, row in wide.iterrows():  # one line per unit: the pairing of every test
        ax.plot(x, row.to_numpy(dtype=float), color="k", alpha=0.35, lw=0.8, marker="o", ms=3)
    top = np.nanmax(wide.to_numpy(dtype=float)) if wide.size else 0.0
    for r in comparisons.itertuples(index=False):
        if r.b in arms:
            j = arms.index(r.b)
            p = r.p_t if np.isfinite(r.p_t) else r.p_wilcoxon
            ax.annotate(f"{r.percent_gain:+.0f}% {significance_stars(p)}", (j, top), xytext=(0, 6),
                        textcoords="offset points", ha="center", fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.12 * (hi - lo))  # room for the gain labels under the title
    ax.set_xticks(x, arms, fontsize=8, rotation=20 if len(arms) > 4 else 0)
    ax.set_ylabel(f"{comparisons['metric'].iloc[0] if len(comparisons) else 'score'} (mean over {unit}s)", fontsize=8)
    ax.set_title(f"{arms[0]} vs each arm: gain in % of the arm, paired over {unit}s", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return png_bytes(fig)


def coupling_scatter(similarity: pd.DataFrame, coupling: pd.DataFrame) -> bytes:
    """Instruction-pair text similarity against alignment-map similarity, one panel per map set (instructed and
    in-context; row 7 of the video-audio study), with the coupling r and its Mantel p in each title.

    ``similarity``: the ``coupling_similarity`` table; ``coupling``: the ``coupling`` table (one subject).
    """
    kinds = list(dict.fromkeys(similarity["maps"])) if "maps" in similarity else [None]
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.6 * len(kinds) + 0.4, 3.4), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        sim = similarity if kind is None else similarity[similarity["maps"] == kind]
        row = coupling if kind is None or "maps" not in coupling else coupling[coupling["maps"] == kind]
        ax.scatter(sim["text_similarity"], sim["map_similarity"], s=14, color="tab:blue", alpha=0.8)
        r = row["r"].iloc[0] if len(row) else np.nan
        p = row["p_value"].iloc[0] if len(row) and "p_value" in row else np.nan
        ax.set_title(f"{kind or 'maps'}: r = {r:.2f}, p = {p:.3g}", fontsize=9)
        ax.set_xlabel("instruction-text similarity", fontsize=8)
        ax.set_ylabel("alignment-map similarity", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Instruction-semantics coupling (one point per instruction pair)", fontsize=10)
    fig.tight_layout()
    return png_bytes(fig)


def rl_baseline_differences(table: pd.DataFrame) -> bytes:
    """Row 4: each model's spaces (one dot per prompt × layer) minus each RL baseline, paired over subjects.

    ``table``: the ``rl_baselines`` table (:func:`brainalign.analysis.group.baseline_comparison_table`). Filled
    dots: the model space is higher at the table's FDR level (``better``); the label of each row says how many of
    its spaces are, and whether the two sides were fitted at the same number of components.
    """
    pairs = list(dict.fromkeys(zip(table["model"], table["baseline"])))
    fig, ax = plt.subplots(figsize=(7, 0.9 + 0.45 * len(pairs)))
    colors = {b: f"C{i}" for i, b in enumerate(dict.fromkeys(table["baseline"]))}
    labels = []
    for y, (model, base) in enumerate(pairs[::-1]):
        rows = table[(table.model == model) & (table.baseline == base)]
        d = rows["mean_diff"].to_numpy(dtype=float)
        better = rows["better"].to_numpy(dtype=bool)
        jitter = np.linspace(-0.15, 0.15, len(d)) if len(d) > 1 else np.zeros(1)
        ax.scatter(d[better], y + jitter[better], color=colors[base], s=18, zorder=3)
        ax.scatter(d[~better], y + jitter[~better], facecolor="none", edgecolor=colors[base], s=18, zorder=3)
        matched = "matched" if rows["matched"].all() else (
            f"{int(rows['n_components_a'].max())} vs {int(rows['n_components_b'].max())} comps")
        labels.append(f"{model} − {base}\n{int(better.sum())}/{len(rows)} significantly higher; {matched}")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(pairs)), labels, fontsize=7)
    ax.set_xlabel("mean difference over subjects (model space − RL baseline); filled: q_t < FDR level, higher")
    ax.set_title("Models against the RL baselines (paired over subjects)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return png_bytes(fig)


def glass_brain(img, title: str) -> bytes:
    """Whole-brain projection of a voxel map (nilearn ``plot_glass_brain``, both signs)."""
    from nilearn import plotting

    import nibabel as nib

    data = np.nan_to_num(np.asarray(img.dataobj, dtype=float), nan=0.0).astype(np.float32)
    img = nib.Nifti1Image(data, img.affine)
    fig = plt.figure(figsize=(7, 2.8))
    plotting.plot_glass_brain(img, figure=fig, title=title, colorbar=True, plot_abs=False, cmap="cold_hot",
                              black_bg=False, threshold=1e-6)
    return png_bytes(fig)


# --------------------------------------------------------------------------- surfaces

#: vertices per hemisphere of FreeSurfer's icosahedral fsaverage meshes
FSAVERAGE_VERTICES = {"fsaverage3": 642, "fsaverage4": 2562, "fsaverage5": 10242, "fsaverage6": 40962,
                      "fsaverage7": 163842, "fsaverage": 163842}
_SHOWN = 10242  # nilearn ships fsaverage5 in its package data: the only mesh drawn without a download
_VIEWS = (("left", "lateral"), ("left", "medial"), ("right", "lateral"), ("right", "medial"))


def hemisphere_values(values: np.ndarray, vertices: np.ndarray, n_vertices: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Scatter one value per column back onto the two hemispheres (NaN where no column).

    Parameters
    ----------
    values : ndarray of shape (n_columns,)
    vertices : int ndarray of shape (n_columns,)
        Vertex of every column among the ``n_vertices[0] + n_vertices[1]`` vertices, left first; indices past
        them (e.g. CIFTI subcortical grayordinates) are returned separately.
    n_vertices : (int, int)

    Returns
    -------
    left : ndarray of shape (n_vertices[0],)
    right : ndarray of shape (n_vertices[1],)
    other : ndarray of shape (n_other,)
        Values of columns that are not cortical vertices.
    """
    values = np.asarray(values, dtype=np.float64)
    vertices = np.asarray(vertices)
    if values.shape != vertices.shape:
        raise ValueError(f"values has shape {values.shape} but vertices has {vertices.shape}; give one vertex per value.")
    n = int(sum(n_vertices))
    full = np.full(n, np.nan)
    cortex = vertices < n
    full[vertices[cortex]] = values[cortex]
    return full[: n_vertices[0]], full[n_vertices[0]:], values[~cortex]


def _fsaverage5_parts(left: np.ndarray, right: np.ndarray, space: str) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Hemisphere values at fsaverage5 resolution, or None when they cannot be drawn on that mesh.

    FreeSurfer's ico meshes are nested: ico order k's vertices are the first vertices of order k + 1 (each new
    vertex is the midpoint of an edge of the coarser mesh), so fsaverage6 / fsaverage (ico 6 / 7) data read at
    fsaverage5's vertices is the first 10242 values of each hemisphere.
    """
    per_hemi = FSAVERAGE_VERTICES.get(space.split("_")[0])
    if per_hemi is None or left.size != per_hemi or right.size != per_hemi or per_hemi < _SHOWN:
        return None
    if per_hemi == _SHOWN:
        return left, right, ""
    return left[:_SHOWN], right[:_SHOWN], (
        f"Drawn on fsaverage5 (shipped with nilearn, no download): {space} is the nested higher-resolution mesh, "
        f"so its first {_SHOWN} vertices per hemisphere are fsaverage5's; the other "
        f"{per_hemi - _SHOWN} per hemisphere are not drawn.")


def _surface_panels(left, right, title: str, draw):
    from nilearn import datasets

    mesh = datasets.load_fsaverage("fsaverage5")["inflated"]
    sulc = datasets.load_fsaverage_data(mesh="fsaverage5", mesh_type="inflated", data_type="sulcal")
    fig, axes = plt.subplots(1, 4, subplot_kw={"projection": "3d"}, figsize=(11, 2.9))
    for ax, (hemi, view) in zip(axes, _VIEWS):
        draw(mesh.parts[hemi], left if hemi == "left" else right, hemi, view, sulc.data.parts[hemi], ax, fig)
        ax.set_title(f"{hemi} {view}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _flat_scatter(left, right, other, title: str, why: str, cmap, vmin, vmax, categorical_labels=None) -> bytes:
    """Fallback without a mesh: value of every vertex against its index, one panel per hemisphere."""
    parts = [("left", left), ("right", right)] + ([("not cortical", other)] if other.size else [])
    fig, axes = plt.subplots(1, len(parts), figsize=(3.8 * len(parts), 2.9), squeeze=False)
    for ax, (name, v) in zip(axes[0], parts):
        idx = np.flatnonzero(np.isfinite(v))
        sc = ax.scatter(idx, v[idx], c=v[idx], s=2, cmap=cmap, vmin=vmin, vmax=vmax, rasterized=True, linewidths=0)
        ax.set_title(f"{name} ({idx.size} of {v.size} vertices)", fontsize=8)
        ax.set_xlabel("vertex index", fontsize=8)
        ax.grid(alpha=0.3)
    if categorical_labels is None:
        fig.colorbar(sc, ax=list(axes[0]), shrink=0.8)
    else:
        from matplotlib.patches import Patch

        fig.legend([Patch(color=cmap(i)) for i in range(len(categorical_labels))], categorical_labels, fontsize=7,
                   loc="lower center", ncol=min(len(categorical_labels), 3), bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(title, fontsize=9, y=1.1)
    fig.text(0.5, 0.99, why, ha="center", va="bottom", fontsize=7, color="0.3", wrap=True)
    return png_bytes(fig)


def surface_map(values: np.ndarray, vertices: np.ndarray, n_vertices: tuple[int, int], space: str, title: str,
                vmax: float | None = None, cmap: str = "cold_hot") -> tuple[bytes, str]:
    """One value per vertex on the inflated fsaverage5 mesh (nilearn ``plot_surf_stat_map``), 4 views.

    NaN (not significant, or not a column) is left uncoloured. Spaces that are not an fsaverage mesh of
    fsaverage5 resolution or finer (fsLR grayordinates, fsaverage4, a custom mesh) are drawn as a flat scatter of
    value against vertex index instead; nothing is downloaded.

    Parameters
    ----------
    values, vertices : ndarray of shape (n_columns,)
        Value and mesh vertex (left hemisphere first) of every column.
    n_vertices : (int, int)
        Vertices per hemisphere of ``space``.
    space : str
        ``"fsaverage5"``, ``"fsaverage6"``, ``"fsaverage"`` / ``"fsaverage7"``; anything else is drawn flat.

    Returns
    -------
    png : bytes
    note : str
        How the figure was drawn, for its caption ("" for a native fsaverage5 map).
    """
    from nilearn import plotting

    left, right, other = hemisphere_values(values, vertices, n_vertices)
    finite = np.concatenate([left, right, other])
    finite = finite[np.isfinite(finite)]
    vmax = float(vmax or (np.abs(finite).max() if finite.size else 1.0)) or 1.0
    parts = _fsaverage5_parts(left, right, space)
    if parts is None:
        why = (f"no mesh of {space} ({n_vertices[0]} + {n_vertices[1]} vertices) ships with nilearn, and the report "
               "downloads nothing: values are plotted against vertex index")
        return _flat_scatter(left, right, other, title, why, plt.get_cmap(cmap), -vmax, vmax), why[0].upper() + why[1:] + "."
    left5, right5, note = parts

    def draw(mesh, v, hemi, view, bg, ax, fig):
        plotting.plot_surf_stat_map(mesh, np.nan_to_num(v, nan=0.0), hemi=hemi, view=view, bg_map=bg, axes=ax,
                                    figure=fig, colorbar=False, threshold=1e-6, vmin=-vmax, vmax=vmax, cmap=cmap,
                                    engine="matplotlib")  # vmin explicit: nilearn maps all-positive data from 0

    fig = _surface_panels(left5, right5, title, draw)
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig.colorbar(ScalarMappable(norm=Normalize(-vmax, vmax), cmap=cmap), ax=list(fig.axes), shrink=0.6, pad=0.02)
    return png_bytes(fig), note


def surface_codes_map(codes: np.ndarray, vertices: np.ndarray, n_vertices: tuple[int, int], space: str,
                      labels: list[str], title: str) -> tuple[bytes, str]:
    """Integer codes per vertex (1..len(labels); 0 = none) as categorical colours on the fsaverage5 mesh."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from nilearn import plotting

    colors = [plt.get_cmap("tab10")(i % 10) for i in range(len(labels))]
    cmap = ListedColormap(colors)
    left, right, other = hemisphere_values(np.where(np.asarray(codes) > 0, codes, np.nan), vertices, n_vertices)
    parts = _fsaverage5_parts(left, right, space)
    if parts is None:
        why = (f"no mesh of {space} ships with nilearn, and the report downloads nothing: codes are plotted against "
               "vertex index")
        return (_flat_scatter(left, right, other, title, why, cmap, 0.5, len(labels) + 0.5, labels),
                why[0].upper() + why[1:] + ".")
    left5, right5, note = parts

    def draw(mesh, v, hemi, view, bg, ax, fig):
        # codes k = 1..n sit in the middle of colour bins [k - 0.5, k + 0.5]; 0 (no part) stays uncoloured
        plotting.plot_surf(mesh, np.nan_to_num(v, nan=0.0), hemi=hemi, view=view, bg_map=bg, axes=ax, figure=fig,
                           colorbar=False, cmap=cmap, threshold=0.5, vmin=0.5, vmax=len(labels) + 0.5,
                           avg_method="median", engine="matplotlib")

    fig = _surface_panels(left5, right5, title, draw)
    fig.legend([Patch(color=c) for c in colors], labels, fontsize=7, loc="lower center",
               ncol=min(len(labels), 3), bbox_to_anchor=(0.5, 0.02))
    return png_bytes(fig), note


# --------------------------------------------------------------------------- steering

def steering_bars(summary: pd.DataFrame) -> bytes:
    """Left: accuracy before (grey) and after the intervention per condition; right: fraction of items flipped.

    ``summary`` is :func:`brainalign.report.steering.steering_summary`'s table; controls are hatched. Error bars:
    ± SEM over the table's rows (subjects × layers).
    """
    labels = [f"{r.section} · {r.condition}" if summary["section"].nunique() > 1 else str(r.condition)
              for r in summary.itertuples(index=False)]
    n = len(summary)
    y = np.arange(n)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 0.5 * n + 1.8), sharey=True)
    colors = ["0.55" if c else "tab:blue" for c in summary["control"]]
    hatch = ["//" if c else None for c in summary["control"]]
    before = summary["accuracy_before"].to_numpy(dtype=float)
    after = summary["accuracy_after"].to_numpy(dtype=float)
    if np.isfinite(before).any():
        a1.barh(y - 0.2, np.nan_to_num(before), 0.38, color="0.85", edgecolor="0.4", label="before")
    a1.barh(y + 0.2 if np.isfinite(before).any() else y, np.nan_to_num(after), 0.38,
            xerr=np.nan_to_num(summary["accuracy_after_sem"].to_numpy(dtype=float)), capsize=3, color=colors,
            hatch=None, edgecolor="k", label="after")
    for yi, h in zip(y, hatch):
        if h:
            a1.patches[-n + yi].set_hatch(h)
    a1.set_xlabel("task accuracy")
    a1.set_xlim(0, 1.05)
    a1.set_title("Accuracy before / after the intervention", fontsize=9)
    a1.legend(fontsize=7, loc="lower right")
    a2.barh(y, np.nan_to_num(summary["flipped_fraction"].to_numpy(dtype=float)),
            xerr=np.nan_to_num(summary["flipped_fraction_sem"].to_numpy(dtype=float)), capsize=3, color=colors,
            edgecolor="k", hatch=None)
    for patch, h in zip(a2.patches, hatch):
        if h:
            patch.set_hatch(h)
    for yi, r in zip(y, summary.itertuples(index=False)):
        if np.isfinite(r.n_flipped) and np.isfinite(r.n_items):
            a2.text(1.02, yi, f"{int(r.n_flipped)}/{int(r.n_items)}", va="center", fontsize=7,
                    transform=a2.get_yaxis_transform())
    if not np.isfinite(summary["flipped_fraction"].to_numpy(dtype=float)).any():
        a2.text(0.5, 0.5, "no flip counts in the tables", ha="center", va="center", transform=a2.transAxes,
                fontsize=9, color="0.4")
    a2.set_xlim(0, 1.05)
    a2.set_xlabel("fraction of items flipped to correct")
    a2.set_title("Flips: intervention (blue) vs controls (grey, hatched)", fontsize=9)
    a1.set_yticks(y, labels, fontsize=8)
    a1.invert_yaxis()
    for ax in (a1, a2):
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig)


def predictivity_curves(pred: pd.DataFrame) -> bytes:
    """Neural predictivity per layer for the model and its controls (± MAD over subjects when given), ★ = best;
    dashed: the model within one reasoning type (``task`` column, when present)."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if "task" not in pred:
        pred = pred.assign(task="all")
    for (cond, task), g in pred.groupby(["condition", "task"], sort=False):
        g = g.sort_values("layer")
        label = str(cond) if task == "all" else f"{cond} within {task}"
        (line,) = ax.plot(g["layer"], g["score"], marker="o", ms=3, label=label, ls="-" if task == "all" else "--")
        if "mad" in g:
            m = np.nan_to_num(g["mad"].to_numpy(dtype=float))
            ax.fill_between(g["layer"], g["score"] - m, g["score"] + m, color=line.get_color(), alpha=0.15)
        best = g[g["best"].astype(str).str.lower() == "true"] if "best" in g else g.loc[[g["score"].idxmax()]]
        ax.plot(best["layer"], best["score"], marker="*", ms=13, color=line.get_color(), mec="k", ls="none")
    if "layer_name" in pred:
        first = pred.drop_duplicates("layer").sort_values("layer")
        if len(first) <= 16:
            ax.set_xticks(first["layer"], first["layer_name"].astype(str), fontsize=7, rotation=45, ha="right")
    ax.set_xlabel("representation (layer)")
    ax.set_ylabel("neural predictivity")
    ax.set_title("Neural predictivity of the model and its controls (★ = best layer)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return png_bytes(fig)
