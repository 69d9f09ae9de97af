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
    "dominant_map",
    "control_pairs",
    "roi_bars",
    "roi_layer_curves",
    "hierarchy_gain",
    "glass_brain",
]

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


def layer_curves(layers: pd.DataFrame, run_scores: pd.DataFrame, metric: str) -> bytes:
    """Score per layer (normalised depth) for each model × prompt, ±SEM over held-out runs; baselines as lines."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for (model, prompt), g in layers.groupby(["model", "prompt"], sort=True):
        g = g.sort_values("depth")
        (line,) = ax.plot(g["depth"], g["mean"], marker="o", label=f"{model} · {prompt}")
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
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(names))
    for run, row in wide.iterrows():
        ax.plot(x, row.to_numpy(), color="0.6", lw=1, marker="o", ms=3)
    ax.plot(x, wide.mean().to_numpy(), color="k", lw=2.5, marker="o", label="mean over runs")
    ax.set_xticks(x, [n.replace("/", "/\n", 1) for n in names], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title("Each held-out run (grey) across feature spaces")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png_bytes(fig)


def prompt_gain(gain: pd.DataFrame) -> bytes:
    """Prompted minus unprompted score per layer, mean ± SEM over runs."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for (model, prompt), g in gain.groupby(["model", "prompt"], sort=True):
        g = g.sort_values("depth")
        ax.errorbar(g["depth"], g["mean_diff"], yerr=g["sem_diff"], marker="o", capsize=3, label=f"{model} · {prompt}")
    ax.axhline(0, color="k", lw=1)
    ax.set_xlabel("layer depth")
    ax.set_ylabel("gain over unprompted")
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


def roi_bars(comparisons: pd.DataFrame, chosen: list[str], reference: str, metric: str) -> bytes:
    """Grouped bars per ROI: the chosen spaces and the reference, mean ± SEM over held-out runs, stars vs reference.

    ``comparisons`` is the ``roi_comparisons`` table (space, roi, mean, sem, p_wilcoxon).
    """
    rois = list(dict.fromkeys(comparisons["roi"]))
    names = [n for n in dict.fromkeys([*chosen, reference]) if n in set(comparisons["space"])]
    t = comparisons.set_index(["roi", "space"])
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


def hierarchy_gain(gain: pd.DataFrame, slopes: pd.DataFrame, hierarchy: list[str]) -> bytes:
    """Prompt-driven gain per ROI in hierarchy order (mean ± SEM over runs), slope and early/late ratio in the legend."""
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
    ax.set_ylabel("prompted − unprompted score")
    ax.set_title("Prompt-driven gain along the hierarchy", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    ax.grid(alpha=0.3)
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
