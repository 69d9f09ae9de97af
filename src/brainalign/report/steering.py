"""The steering part of the report: accuracy before/after an intervention and flips against its controls.

Read from the CSV tables ``brainalign steer`` writes (``nari.csv``: subject, layer, condition, n_items, flipped,
flipped_fraction, intervened_accuracy; ``predictivity.csv``: condition, layer, layer_name, score, mad, best) and
tolerant of richer tables: a ``section`` column, ``accuracy_before`` / ``accuracy_after`` / ``n_flipped`` /
``control`` columns and any extra column are accepted. A table is a steering table when it has a ``condition``
column and a flip or after-intervention accuracy column.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["find_steering_tables", "steering_summary", "steering_contrasts", "steering_section",
           "is_steering_folder"]

FLIP_COLUMNS = ("n_flipped", "flipped", "flipped_fraction")
AFTER_COLUMNS = ("accuracy_after", "intervened_accuracy")
PAIR_KEYS = ("section", "subject", "layer", "seed", "fold")
#: conditions that are controls when a table has no ``control`` column
CONTROL_NAMES = ("random_direction", "random_fmri", "random_fmri_mean", "random_features", "untrained",
                 "shuffled", "label_shuffled", "random")


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def find_steering_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """Every CSV in ``folder`` that holds steering outcomes, by file stem (sorted, so the order is stable)."""
    out = {}
    for path in sorted(Path(folder).glob("*.csv")):
        try:
            head = pd.read_csv(path, nrows=0)
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        cols = set(head.columns)
        if "condition" in cols and (cols & set(FLIP_COLUMNS) or cols & set(AFTER_COLUMNS)):
            out[path.stem] = pd.read_csv(path)
    return out


def is_steering_folder(folder: str | Path) -> bool:
    return bool(find_steering_tables(folder))


def _as_bool(col: pd.Series) -> pd.Series | None:
    """A control column as booleans, or None when it names something else (e.g. a control kind)."""
    if col.dtype == bool:
        return col
    mapping = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
    low = col.astype(str).str.strip().str.lower()
    if low.isin(list(mapping)).all():
        return low.map(mapping).astype(bool)
    return None


def _normalise(table: pd.DataFrame, name: str, manifest: dict) -> pd.DataFrame:
    """One row per outcome with section, condition, control, accuracy_before/after, n_flipped, n_items, flip rate."""
    t = table.copy()
    if "section" not in t:
        t["section"] = name
    t["section"] = t["section"].astype(str)
    t["condition"] = t["condition"].astype(str)
    if "accuracy_after" not in t and "intervened_accuracy" in t:
        t["accuracy_after"] = t["intervened_accuracy"]
    if "accuracy_before" not in t:
        before = manifest.get("model_accuracy")
        t["accuracy_before"] = float(before) if isinstance(before, (int, float)) else np.nan
    if "n_flipped" not in t and "flipped" in t:
        t["n_flipped"] = pd.to_numeric(t["flipped"], errors="coerce")
    if "flipped_fraction" not in t and "n_flipped" in t and "n_items" in t:
        t["flipped_fraction"] = t["n_flipped"] / t["n_items"].where(t["n_items"] > 0)
    for c in ("accuracy_before", "accuracy_after", "n_flipped", "n_items", "flipped_fraction"):
        t[c] = pd.to_numeric(t[c], errors="coerce") if c in t else np.nan
    flags = _as_bool(t["control"]) if "control" in t else None
    if flags is None:
        flags = t["condition"].isin(CONTROL_NAMES) | t["condition"].str.startswith(("random", "control"))
        if flags.all():  # no recognisable main condition: the first one in the file is the intervention
            flags = t["condition"] != t["condition"].iloc[0]
    t["is_control"] = flags.to_numpy(dtype=bool)
    return t


def _sem(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan


def steering_summary(tables: dict[str, pd.DataFrame], manifest: dict | None = None) -> pd.DataFrame:
    """Per section × condition: mean accuracy before and after (± SEM over rows), flips and flip rate.

    Returns
    -------
    DataFrame with columns section, condition, control, n_rows, accuracy_before, accuracy_after,
    accuracy_after_sem, n_flipped, n_items, flipped_fraction, flipped_fraction_sem (conditions in file order).
    """
    manifest = manifest or {}
    rows = []
    for name, table in tables.items():
        t = _normalise(table, name, manifest)
        for (section, cond), g in t.groupby(["section", "condition"], sort=False):
            rows.append(dict(section=section, condition=cond, control=bool(g["is_control"].iloc[0]), n_rows=len(g),
                             accuracy_before=g["accuracy_before"].mean(), accuracy_after=g["accuracy_after"].mean(),
                             accuracy_after_sem=_sem(g["accuracy_after"]),
                             n_flipped=g["n_flipped"].sum(min_count=1), n_items=g["n_items"].sum(min_count=1),
                             flipped_fraction=g["flipped_fraction"].mean(),
                             flipped_fraction_sem=_sem(g["flipped_fraction"])))
    return pd.DataFrame(rows)


def steering_contrasts(tables: dict[str, pd.DataFrame], manifest: dict | None = None) -> pd.DataFrame:
    """The intervention against each of its controls, paired over the rows they share (subject, layer, ...).

    Returns
    -------
    DataFrame with columns section, condition, control_condition, n_pairs, n_better (pairs where the intervention
    flipped a larger fraction than the control), mean_diff_flipped, mean_diff_accuracy.
    """
    manifest = manifest or {}
    rows = []
    for name, table in tables.items():
        t = _normalise(table, name, manifest)
        keys = [k for k in PAIR_KEYS if k in t]
        for section, s in t.groupby("section", sort=False):
            mains = s[~s["is_control"]]
            for cond, m in mains.groupby("condition", sort=False):
                for ctl, c in s[s["is_control"]].groupby("condition", sort=False):
                    j = m.merge(c, on=keys, suffixes=("", "_c")) if keys else pd.DataFrame()
                    if j.empty:
                        continue
                    d_flip = j["flipped_fraction"] - j["flipped_fraction_c"]
                    d_acc = j["accuracy_after"] - j["accuracy_after_c"]
                    rows.append(dict(section=section, condition=cond, control_condition=ctl, n_pairs=len(j),
                                     n_better=int((d_flip > 0).sum()), mean_diff_flipped=float(d_flip.mean()),
                                     mean_diff_accuracy=float(d_acc.mean())))
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "–" if not np.isfinite(v) else f"{v:.3f}"
    return str(v)


def _without_repeats(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables to summarise: ``steering.csv`` (``brainalign steer``'s tidy summary, one row per section and
    condition) replaces the per-section tables whose sections it already holds (e.g. ``nari.csv``), which would
    otherwise appear twice under the same labels."""
    tidy = tables.get("steering")
    if tidy is None or "section" not in tidy:
        return tables
    held = set(tidy["section"].astype(str))
    return {k: v for k, v in tables.items() if k == "steering" or k not in held}


def steering_section(folder: str | Path) -> dict | None:
    """Figures, tables and CSV data for the report, or None when ``folder`` holds no steering table."""
    from brainalign.report import figures

    folder = Path(folder)
    tables = find_steering_tables(folder)
    if not tables:
        return None
    manifest = _read_manifest(folder)
    summarised = _without_repeats(tables)
    summary = steering_summary(summarised, manifest)
    contrasts = steering_contrasts(summarised, manifest)
    cols = ["section", "condition", "control", "n_rows", "accuracy_before", "accuracy_after", "n_flipped",
            "n_items", "flipped_fraction"]
    out = dict(
        png=base64.b64encode(figures.steering_bars(summary)).decode("ascii"),
        cols=cols, rows=[[_fmt(r[c]) for c in cols] for _, r in summary.iterrows()],
        contrast_cols=list(contrasts.columns),
        contrasts=[[_fmt(v) for v in r] for r in contrasts.itertuples(index=False)],
        tables=[dict(name=f"{k}.csv", b64=base64.b64encode(v.to_csv(index=False).encode()).decode("ascii"))
                for k, v in tables.items()],
        before_known=bool(summary["accuracy_before"].notna().any()),
        predictivity="",
    )
    pred_path = folder / "predictivity.csv"
    if pred_path.is_file():
        pred = pd.read_csv(pred_path)
        if {"condition", "layer", "score"} <= set(pred.columns) and len(pred):
            out["predictivity"] = base64.b64encode(figures.predictivity_curves(pred)).decode("ascii")
            out["tables"].append(dict(name="predictivity.csv",
                                      b64=base64.b64encode(pred.to_csv(index=False).encode()).decode("ascii")))
    return out
