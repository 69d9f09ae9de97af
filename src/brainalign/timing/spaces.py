"""Feature spaces on the TR grid: what is fitted, and how a config names it.

A :class:`FeatureSpace` is one (n_rows, dim) table of TR-wise (or item-wise) features with what it is (model,
prompt, layer or baseline). :func:`build_feature_spaces` makes them from stimulus features and the design matrix;
:func:`resolve_space_name` turns the relative layer names of a config (``'CLIP/none/L-1'``) into fitted names.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from brainalign.stimuli.events import stimulus_design

if TYPE_CHECKING:
    from brainalign.config import AnalysisSpec, ModelSpec
    from brainalign.study.data import StudyData

__all__ = ["FeatureSpace", "LAYER_PLACEHOLDER", "space_name", "baseline_space_name", "unknown_space_hint", "shuffled_design",
           "build_feature_spaces", "resolve_space_name", "resolved_names"]


#: stands for a layer index in names planned before the model's depth is known (hub models not checked offline)
LAYER_PLACEHOLDER = "<layer>"


def space_name(model: str, prompt: str, layer: int | str) -> str:
    """The name of a model feature space: ``<model>/<prompt>/L<layer>``.

    The one naming rule: :func:`build_feature_spaces`, the controls
    (:mod:`brainalign.pipeline.controls`) and the checks that run before any
    compute (:mod:`brainalign.pipeline.checks`) all name spaces with it.
    ``layer`` may be :data:`LAYER_PLACEHOLDER` when the check does not know the model's depth.
    """
    return f"{model}/{prompt}/L{layer if isinstance(layer, str) else int(layer)}"


def baseline_space_name(baseline: str) -> str:
    """The name of a TR-design baseline space: ``baseline/<name>``."""
    return f"baseline/{baseline}"


def unknown_space_hint(name: str, known) -> str:
    """``"did you mean 'X'? "`` for the closest known space name (empty when none is close)."""
    import difflib

    hint = difflib.get_close_matches(name, sorted(known), n=1)
    return f"did you mean '{hint[0]}'? " if hint else ""


class FeatureSpace:
    """One set of TR-wise features and what it is.

    Parameters
    ----------
    name : str
    X : ndarray of shape (n_rows, dim), optional
        The features, before scaling and delays; kept as given. Give either ``X`` or ``source``.
    kind : {"model", "baseline", "control"}
    model, prompt : str
    layer : int
    depth : float
        layer / n_layers.
    source : callable, optional
        ``source() -> ndarray (n_rows, dim)``: computes the features when a fit needs them (each access of
        :attr:`X` calls it; nothing is kept), so a run holds one space's features at a time.
    dim : int, optional
        Number of columns of ``source()``'s array (required with ``source``: :meth:`info` reads it, not ``X``).
    """

    def __init__(self, name: str, X: np.ndarray | None = None, kind: str = "model", model: str = "",
                 prompt: str = "", layer: int = -1, depth: float = np.nan, *,
                 source: Callable[[], np.ndarray] | None = None, dim: int | None = None) -> None:
        if (X is None) == (source is None):
            raise ValueError(f"FeatureSpace '{name}': give exactly one of X (an (n_rows, dim) array) or source "
                             "(a function returning it).")
        if source is not None and dim is None:
            raise ValueError(f"FeatureSpace '{name}': a lazy space (source=...) needs dim=<number of columns>.")
        self.name, self.kind, self.model, self.prompt, self.layer, self.depth = name, kind, model, prompt, layer, depth
        self._X, self._source = X, source
        self._dim = int(dim) if dim is not None else None

    @property
    def X(self) -> np.ndarray:
        """The (n_rows, dim) features: the array given, or a fresh one from ``source`` (not kept)."""
        return self._X if self._X is not None else self._source()

    @X.setter
    def X(self, value: np.ndarray) -> None:
        self._X, self._source, self._dim = value, None, None

    @property
    def is_lazy(self) -> bool:
        """Whether :attr:`X` is computed on access (nothing held between fits)."""
        return self._X is None

    @property
    def dim(self) -> int:
        """Number of feature columns, without computing :attr:`X`."""
        return int(self._X.shape[1]) if self._X is not None else self._dim

    def info(self) -> dict:
        return dict(
            space=self.name, kind=self.kind, model=self.model, prompt=self.prompt,
            layer=self.layer, depth=self.depth, dim=self.dim,
        )

    def __repr__(self) -> str:
        how = "lazy" if self.is_lazy else "array"
        return f"FeatureSpace(name={self.name!r}, kind={self.kind!r}, dim={self.dim}, {how})"


def _design_times(design, F, j: int) -> Callable[[], np.ndarray]:
    """``() -> design @ F[:, j, :]``: one layer's TR-wise features, read from ``F`` (memory-mapped or not)."""
    return lambda: np.asarray(design @ np.asarray(F[:, j, :]))


def shuffled_design(data: StudyData, seed: int) -> np.ndarray:
    """Category-shuffled control: within each run, blocks keep their timing but swap stimuli."""
    rng = np.random.default_rng(seed)
    ev = data.events.copy()
    for run in pd.unique(ev["run"]):
        sel = np.flatnonzero(ev["run"].to_numpy() == run)
        ev.iloc[sel, ev.columns.get_loc("stimulus")] = rng.permutation(ev["stimulus"].to_numpy()[sel])
    return stimulus_design(ev, data.recording.runs, data.recording.tr, data.stimuli)


def build_feature_spaces(
    data: StudyData, features: dict[str, dict[str, np.ndarray]], model_meta: dict,
    models: Sequence[ModelSpec], baselines: Sequence[str] = (), seed: int = 0,
) -> list[FeatureSpace]:
    """TR-wise features for every model × prompt × layer and every baseline.

    Parameters
    ----------
    data : StudyData
        Its ``design`` (n_rows, n_stimuli) maps stimulus features to rows; ``events`` feed the shuffled baseline.
    features : dict model name -> dict prompt name -> ndarray of shape (n_stimuli, n_layers, dim)
    model_meta : dict model name -> dict with ``layers`` (list of int) and ``n_layers`` (int)
    models : sequence of ModelSpec
        The config's ``models``, in the order the spaces are made.
    baselines : sequence of {"onoff", "category", "category_shuffled"}
        ``analysis.baselines``.
    seed : int
        The experiment's seed (the category-shuffled baseline).

    Returns
    -------
    list of FeatureSpace
        Model spaces are lazy (:attr:`FeatureSpace.X` computes ``design @ F[:, layer, :]`` on each access and
        keeps nothing), so memory holds the features (memory-mapped from the cache) and one space's X at a time.
        Model spaces named ``<model>/<prompt>/L<layer>`` (kind ``model``; the frame baselines of ``kind: baseline``
        models, ``<name>/none/L0``, kind ``baseline``), then ``baseline/<name>`` (kind ``baseline``).
    """
    spaces = []
    for spec in models:
        info = model_meta[spec.name]
        for pname, F in features[spec.name].items():  # F: (n_stimuli, n_layers, dim)
            for j, layer in enumerate(info["layers"]):
                spaces.append(  # lazy: design @ F[:, j, :] when a fit needs it, one space at a time
                    FeatureSpace(
                        name=space_name(spec.name, pname, layer), source=_design_times(data.design, F, j),
                        dim=F.shape[2], kind="baseline" if getattr(spec, "kind", "") == "baseline" else "model", model=spec.name,
                        prompt=pname, layer=layer,
                        depth=layer / info["n_layers"],
                    )
                )
    base = {
        "onoff": lambda: data.design.sum(1, keepdims=True),
        "category": lambda: data.design,
        "category_shuffled": lambda: shuffled_design(data, seed),
    }
    for b in baselines:
        spaces.append(FeatureSpace(name=baseline_space_name(b), X=base[b](), kind="baseline"))
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
    same = table[table["model"] + "/" + table["prompt"] == stem]
    model = same[same["kind"] == "model"]
    if model.empty:  # a frame baseline's one layer ('Pixels/none/L-1')
        model = same[same["kind"] == "baseline"]
    layers = sorted(set(model["layer"].astype(int)))
    if not layers or int(k) < -len(layers):
        return name  # unknown: the caller's check names the available spaces
    return f"{stem}/L{layers[int(k)]}"


def resolved_names(analysis: AnalysisSpec, spaces) -> AnalysisSpec:
    """``analysis`` with the reference, partition and equivalence spaces resolved by :func:`resolve_space_name`.

    Parameters
    ----------
    analysis : AnalysisSpec
        The config's ``analysis`` section.
    spaces : list of FeatureSpace or DataFrame
        The fitted spaces (or the ``spaces`` table).

    Returns
    -------
    AnalysisSpec
        ``analysis`` itself when no name changes, else a copy with the fitted names.
    """
    parts = [p.model_copy(update=dict(spaces=[resolve_space_name(n, spaces) for n in p.spaces]))
             for p in analysis.partitions]
    equiv = [e.model_copy(update=dict(a=[resolve_space_name(n, spaces) for n in e.a],
                                      b=[resolve_space_name(n, spaces) for n in e.b]))
             for e in analysis.equivalence]
    new = analysis.model_copy(update=dict(reference=resolve_space_name(analysis.reference, spaces), partitions=parts,
                                          equivalence=equiv))
    return analysis if new == analysis else new
