"""Run a steering study from a :class:`~brainalign.steering.config.SteerConfig` (``brainalign steer``).

Writes tidy tables and a manifest into an output folder:

- ``predictivity.csv``: one row per (condition, layer) with the group score
  (median over subjects of the median over voxels) and the MAD across subjects;
  conditions ``model`` and the controls ``random_features`` / ``untrained``.
  Layers follow the seed's concatenation (attention layers, then residual).
- ``predictivity_subjects.csv``: one row per (condition, subject, layer).
- ``nari.csv``: one row per (subject, layer, condition) from
  :func:`brainalign.steering.directions.nari_study`.
- ``manifest.json``: config, seed, versions, summary numbers, timings.

Only the planted setting runs end to end here; the ds003076 study stops with
the list of missing files (:mod:`brainalign.steering.data`) or, when all files
are there, with a message that the beta loader is not written yet.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from brainalign.atomic import atomic_write_json, atomic_write_text
from brainalign.steering.config import SteerConfig, SteerConfigError

__all__ = ["check_inputs", "run_steer"]


def check_inputs(cfg: SteerConfig, base_dir: str | Path = ".") -> str:
    """Empty string when the study's inputs are present, else a report naming every missing file."""
    if cfg.brain is None:
        return ""
    from brainalign.steering.data import describe_missing

    root = Path(cfg.brain.root)
    if not root.is_absolute():
        root = Path(base_dir) / root
    return describe_missing(root, cfg.brain.subjects, cfg.brain.betas)


def _layers(spec, n_layers: int) -> list[int]:
    from brainalign.steering.directions import middle_layers

    if spec == "middle":
        return middle_layers(n_layers)
    if spec == "all":
        return list(range(n_layers))
    bad = [k for k in spec if not 0 <= k < n_layers]
    if bad:
        raise SteerConfigError(f"nari.layers has {bad}, outside the model's {n_layers} decoder layers (0..{n_layers - 1}).")
    return list(spec)


def _stack(states: dict, kinds) -> np.ndarray:
    return np.concatenate([states[k] for k in kinds], axis=1)


def _predictivity_rows(cond: str, res: dict, n_layers: int, kinds) -> tuple[list, list]:
    from brainalign.analysis import mad

    rows, subj_rows = [], []
    names = [f"{kind}_{k}" for kind in kinds for k in range(n_layers)]
    for j, name in enumerate(names):
        rows.append({"condition": cond, "layer": j, "layer_name": name, "score": float(res["group_curve"][j]),
                     "mad": float(mad(res["subject_curves"][:, j])), "best": j == res["best_layer"]})
        for s in range(res["subject_curves"].shape[0]):
            subj_rows.append({"condition": cond, "subject": s, "layer": j, "layer_name": name,
                              "score": float(res["subject_curves"][s, j])})
    return rows, subj_rows


def run_steer(cfg: SteerConfig, out: str | Path, base_dir: str | Path = ".",
              log: Callable[[str], None] = lambda s: None) -> dict:
    """Predictivity (+ controls) and NARI (+ controls) of a study; returns the manifest written to ``out``."""
    import pandas as pd
    import torch

    from brainalign.steering import encoders
    from brainalign.steering.directions import nari_study
    from brainalign.steering.hooks import last_token_states
    from brainalign.steering.models import untrained_copy

    out = Path(out)
    missing = check_inputs(cfg, base_dir)
    if missing:
        raise FileNotFoundError(missing)
    if cfg.planted is None:
        raise SteerConfigError("the ds003076 inputs are all present, but loading GLMsingle betas and task_items.pkl "
                               "is not implemented yet in brainalign.steering; run a 'planted:' config meanwhile.")
    from brainalign.steering.simulate import planted_study

    t0 = time.perf_counter()
    timings = {}
    out.mkdir(parents=True, exist_ok=True)
    p = cfg.planted
    torch.manual_seed(cfg.seed)
    log(f"planted study: {p.arch}, {p.num_layers} layers, {p.n_items} items, {p.n_subjects} subjects")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="brainalign-planted-") as tmp:  # the model is rebuilt from the seed
        st = planted_study(Path(tmp) / "model", seed=cfg.seed, n_items=p.n_items, arch=p.arch,
                           hidden_size=p.hidden_size, num_layers=p.num_layers, n_subjects=p.n_subjects,
                           n_voxels=p.n_voxels, kappa=p.kappa, noise=p.noise)
    timings["model"] = round(time.perf_counter() - t0, 3)
    kinds = list(cfg.representations.kinds)
    states = {"attention": st.attention, "residual": st.residual}
    reps = {"model": _stack(states, kinds)}
    pr = cfg.predictivity
    if "random_features" in pr.controls:
        reps["random_features"] = encoders.random_features(*reps["model"].shape, seed=cfg.seed)
    if "untrained" in pr.controls:
        fresh = untrained_copy(st.model, seed=cfg.seed + 1)
        reps["untrained"] = _stack(last_token_states(fresh, st.tokenizer, st.prompts, kinds=tuple(kinds)), kinds)
    ceiling = None
    if pr.ceiling is not None and len(st.subjects_Y) >= 3:
        ceiling = encoders.deductive_ceiling(st.subjects_Y, st.task_labels, pr.n_folds, cfg.seed, pr.alphas,
                                             pr.ceiling.max_combinations, pr.ceiling.n_bootstrap)
    t1 = time.perf_counter()
    rows, subj_rows, summary = [], [], {}
    for cond, R in reps.items():
        res = encoders.neural_predictivity(R, st.subjects_Y, st.task_labels, pr.n_folds, cfg.seed, pr.alphas,
                                           pr.alpha_mode, ceiling=ceiling)
        a, b = _predictivity_rows(cond, res, st.attention.shape[1], kinds)
        rows += a
        subj_rows += b
        summary[cond] = {"score": res["score"], "best_layer": res["best_layer"], "mad": res["mad"]}
        log(f"predictivity {cond}: {res['score']:.3f} (layer {res['best_layer']})")
    timings["predictivity"] = round(time.perf_counter() - t1, 3)
    t2 = time.perf_counter()
    nc = cfg.nari
    layers = _layers(nc.layers, st.attention.shape[1])
    table, _ = nari_study(st.model, st.tokenizer, st.prompts, st.labels, st.attention, st.subjects_Y,
                          st.subjects_correct, st.model_correct, layers=layers, controls=list(nc.controls),
                          seed=cfg.seed, loss=nc.loss, proj_alpha=nc.proj_alpha, max_steps=nc.max_steps,
                          check_every=nc.check_every, lr_factor=nc.lr_factor)
    timings["nari"] = round(time.perf_counter() - t2, 3)
    nari_summary = {c: {"flipped_fraction": float(g["flipped_fraction"].mean()),
                        "intervened_accuracy": float(g["intervened_accuracy"].mean())}
                    for c, g in table.groupby("condition", sort=False)}
    for c, v in nari_summary.items():
        log(f"NARI {c}: flipped {v['flipped_fraction']:.3f}, intervened accuracy {v['intervened_accuracy']:.3f}")
    atomic_write_text(out / "predictivity.csv", pd.DataFrame(rows).to_csv(index=False))
    atomic_write_text(out / "predictivity_subjects.csv", pd.DataFrame(subj_rows).to_csv(index=False))
    atomic_write_text(out / "nari.csv", table.to_csv(index=False))
    timings["total"] = round(time.perf_counter() - t0, 3)
    import brainalign

    manifest = {"name": cfg.name, "seed": cfg.seed, "source": "planted", "config": cfg.model_dump(mode="json"),
                "model_accuracy": float(st.model_correct.mean()), "planted_layer": st.layer, "kappa": st.kappa,
                "nari_layers": layers, "predictivity": summary, "nari": nari_summary, "timings_s": timings,
                "versions": {"brainalign": getattr(brainalign, "__version__", "unknown"), "torch": torch.__version__,
                             "numpy": np.__version__, "python": platform.python_version()},
                "tables": ["predictivity.csv", "predictivity_subjects.csv", "nari.csv"]}
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
