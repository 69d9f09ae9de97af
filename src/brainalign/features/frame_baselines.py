"""Frame baselines as models of a study config (``kind: baseline``): pixels, motion energy, random, RL agent, and
the dataset's RL regressors (``bson_regressors``: rows of a file put on the frames, :mod:`.rl_regressors`).

A baseline reads the study's stimulus frames (``StudyData.load_stimuli``, e.g.
gameplay frames), computes one feature row per frame with
:func:`brainalign.features.baselines.baseline_features` and enters the
pipeline like a one-layer model read without a prompt: one feature space
``<name>/none/L0``, put on the TR grid by the study's design (per-TR mean of
its frames) and reduced to ``timing.pca_components`` like every model space
(matched dimensionality).

Temporal baselines (``motion_energy``, ``rl_agent`` with ``frame_stack``) run
over each run's frames in time order, separately per run (no filter crosses a
run boundary); with ``stimuli.max_frames`` they see the kept frames only, so
``fps`` should be the rate of the kept frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from brainalign.features.baselines import baseline_features

__all__ = ["frame_baseline_features", "kept_frame_rate", "TEMPORAL_BASELINES"]

#: Baselines whose rows depend on neighbouring frames: computed run by run.
TEMPORAL_BASELINES = ("motion_energy", "rl_agent")


def _resolve_options(options: dict, data_root: Path | None) -> dict:
    out = dict(options)
    agent = out.get("agent")
    if isinstance(agent, str) and data_root is not None and not Path(agent).is_absolute():
        out["agent"] = str(Path(data_root) / agent)
    for key in ("size",):  # YAML lists → tuples
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    return out


def kept_frame_rate(events) -> float:
    """Frames per second of the kept frames: 1 / median onset gap between consecutive frames of a run.

    Raises
    ------
    ValueError
        When the stimuli have no onsets (give ``options.fps``) or fewer than two frames per run.
    """
    if events is None or not {"run", "onset"} <= set(events.columns):
        raise ValueError("motion_energy needs options.fps: the stimuli carry no frame onsets to estimate it from.")
    gaps = events.sort_values(["run", "onset"]).groupby("run")["onset"].diff().dropna().to_numpy()
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise ValueError("motion_energy: fewer than two kept frames per run; give options.fps.")
    return float(1.0 / np.median(gaps))


def frame_baseline_features(spec, stimuli, seed: int, data, tick: Callable[[], None] = lambda: None,
                            base_dir: Path | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Per-stimulus features of a ``kind: baseline`` model.

    Parameters
    ----------
    spec : ModelSpec with ``kind: baseline``
    stimuli : the config's ``stimuli`` section (its ``format`` names where frames come from)
    seed : the experiment's seed (the ``random`` baseline's default seed)
    data : StudyData whose ``load_stimuli`` gives uint8 frames (H, W, 3), in ``stimuli`` order
    tick : progress callback, called once

    Returns
    -------
    features : {"none": ndarray (n_stimuli, 1, dim) float32}
    meta : dict with layers [0], n_layers 1, model_id, fingerprint, texts, n_tokens

    Raises
    ------
    ValueError
        When the stimuli have no frames, frames differ in size (set ``stimuli.size``), or the baseline's
        options are wrong (the message of :func:`baseline_features`).
    """
    if spec.baseline == "bson_regressors":  # rows of a file, placed on the frames: no pixels read
        return _regressor_features(spec, stimuli, data, tick)
    if data.load_stimuli is None:
        raise ValueError(f"models[{spec.name}] is a frame baseline but stimuli.format '{stimuli.format}' gives "
                         "no frames; use stimuli.format gameplay-frames (or nsd-images).")
    frames = data.load_stimuli()
    shapes = {np.shape(f) for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"models[{spec.name}]: frames come in {len(shapes)} sizes ({sorted(shapes)[:3]}...); set "
                         "stimuli.size to resize them to one square size.")
    frames = np.stack(frames)
    root = data.recording.meta.get("data_root") if data.recording is not None else None
    options = _resolve_options(spec.options, root)
    if spec.baseline == "random":
        options.setdefault("seed", seed)
    kind = spec.baseline
    events = data.events
    if kind == "motion_energy" and "fps" not in options:
        options["fps"] = kept_frame_rate(events)
        options.setdefault("temporal_freqs", (0.0, options["fps"] / 4, options["fps"] / 2))
    if kind in TEMPORAL_BASELINES and events is not None and "run" in events.columns and len(events) == len(frames):
        runs = events["run"].to_numpy()
        F = None
        for r in dict.fromkeys(runs.tolist()):
            sel = np.flatnonzero(runs == r)
            part = np.asarray(baseline_features(kind, frames[sel], **options), dtype=np.float32)
            if F is None:
                F = np.empty((len(frames), part.shape[1]), dtype=np.float32)
            F[sel] = part
    else:
        F = np.asarray(baseline_features(kind, frames, **options), dtype=np.float32)
    if F.shape[0] != len(frames):
        raise ValueError(f"models[{spec.name}]: baseline '{kind}' gave {F.shape[0]} rows for {len(frames)} frames.")
    tick()
    settings = {k: (str(v) if not isinstance(v, (int, float, str, bool, type(None))) else v)
                for k, v in sorted(options.items())}
    meta = dict(layers=[0], n_layers=1, model_id=f"baseline:{kind}", model_type=None,
                fingerprint=f"baseline:{kind}:{settings}", texts={"none": ["none"]}, n_tokens={})
    return {"none": F[:, None, :]}, meta


def _regressor_features(spec, stimuli, data, tick: Callable[[], None]) -> tuple[dict[str, np.ndarray], dict]:
    """``baseline: bson_regressors``: the file's rows on the subject's kept frames (features.rl_regressors)."""
    from brainalign.config import RegressorOptions
    from brainalign.features.rl_regressors import regressor_documents, regressor_frame_features, regressor_path

    opts = RegressorOptions(**spec.options)
    path = regressor_path(data.recording.meta.get("data_root"), opts.path)
    F, n_without = regressor_frame_features(opts, regressor_documents(path), str(data.recording.subject), data.events,
                                            data.recording.tr, getattr(stimuli, "time_unit", "ms"), name=spec.name,
                                            path=path)
    tick()
    settings = opts.model_dump()
    meta = dict(layers=[0], n_layers=1, model_id="baseline:bson_regressors", model_type=None,
                fingerprint=f"baseline:bson_regressors:{settings}", texts={"none": ["none"]}, n_tokens={},
                frames_without_row=n_without)
    return {"none": F[:, None, :]}, meta
