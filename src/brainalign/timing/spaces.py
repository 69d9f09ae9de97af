"""Feature spaces on the TR grid: what is fitted, and how a config names it.

A :class:`FeatureSpace` is one (n_rows, dim) table of TR-wise (or item-wise) features with what it is (model,
prompt, layer or baseline). :func:`build_feature_spaces` makes them from stimulus features and the design matrix;
:func:`resolve_space_name` turns the relative layer names of a config (``'CLIP/none/L-1'``) into fitted names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from brainalign.stimuli.events import stimulus_design

if TYPE_CHECKING:
    from brainalign.config import Experiment
    from brainalign.study.data import StudyData

__all__ = ["FeatureSpace", "shuffled_design", "build_feature_spaces", "resolve_space_name", "resolved_names"]


@dataclass
class FeatureSpace:
    """One set of TR-wise features and what it is."""

    name: str
    X: np.ndarray  # (n_trs, dim), before scaling/delays
    kind: str  # "model" | "baseline"
    model: str = ""
    prompt: str = ""
    layer: int = -1
    depth: float = np.nan  # layer / n_layers

    def info(self) -> dict:
        return dict(
            space=self.name, kind=self.kind, model=self.model, prompt=self.prompt,
            layer=self.layer, depth=self.depth, dim=self.X.shape[1],
        )


def shuffled_design(data: StudyData, seed: int) -> np.ndarray:
    """Category-shuffled control: within each run, blocks keep their timing but swap stimuli."""
    rng = np.random.default_rng(seed)
    ev = data.events.copy()
    for run in pd.unique(ev["run"]):
        sel = np.flatnonzero(ev["run"].to_numpy() == run)
        ev.iloc[sel, ev.columns.get_loc("stimulus")] = rng.permutation(ev["stimulus"].to_numpy()[sel])
    return stimulus_design(ev, data.recording.runs, data.recording.tr, data.stimuli)


def build_feature_spaces(
    exp: Experiment, data: StudyData, features: dict[str, dict[str, np.ndarray]], model_meta: dict
) -> list[FeatureSpace]:
    """TR-wise features for every model × prompt × layer and every baseline."""
    spaces = []
    for spec in exp.models:
        info = model_meta[spec.name]
        for pname, F in features[spec.name].items():  # F: (n_stimuli, n_layers, dim)
            for j, layer in enumerate(info["layers"]):
                spaces.append(
                    FeatureSpace(
                        name=f"{spec.name}/{pname}/L{layer}", X=np.asarray(data.design @ F[:, j, :]), kind="model",
                        model=spec.name, prompt=pname, layer=layer, depth=layer / info["n_layers"],
                    )
                )
    base = {
        "onoff": lambda: data.design.sum(1, keepdims=True),
        "category": lambda: data.design,
        "category_shuffled": lambda: shuffled_design(data, exp.seed),
    }
    for b in exp.analysis.baselines:
        spaces.append(FeatureSpace(name=f"baseline/{b}", X=base[b](), kind="baseline"))
    return spaces


def resolve_space_name(name: str, spaces) -> str:
    """A space name with a negative layer (``'CLIP/none/L-1'`` = last layer read) as the fitted name.

    Study configs run on models of different depth (and on tiny stand-ins), so a fixed layer index
    cannot name "the last layer" for all of them. ``spaces``: list of FeatureSpace or the spaces table.
    """
    table = spaces if isinstance(spaces, pd.DataFrame) else pd.DataFrame([sp.info() for sp in spaces])
    if name in set(table["space"]) or "/L-" not in name:
        return name
    stem, _, k = name.rpartition("/L")
    model = table[(table["kind"] == "model") & (table["model"] + "/" + table["prompt"] == stem)]
    layers = sorted(set(model["layer"].astype(int)))
    if not layers or int(k) < -len(layers):
        return name  # unknown: the caller's check names the available spaces
    return f"{stem}/L{layers[int(k)]}"


def resolved_names(exp: Experiment, spaces) -> Experiment:
    """``exp`` with the reference and partition spaces resolved by :func:`resolve_space_name`."""
    a = exp.analysis
    parts = [p.model_copy(update=dict(spaces=[resolve_space_name(n, spaces) for n in p.spaces])) for p in a.partitions]
    new = a.model_copy(update=dict(reference=resolve_space_name(a.reference, spaces), partitions=parts))
    return exp if new == a else exp.model_copy(update=dict(analysis=new))
