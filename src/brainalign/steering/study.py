"""Run a steering study from a :class:`~brainalign.steering.config.SteerConfig` (``brainalign steer``).

Every section the config holds runs, for every model (one planted model, or
each checkpoint of ``models`` on the ds003076 data); every table has a
``model`` column. Files written into the output folder (each atomically):

- ``predictivity.csv``: (model, condition, task, layer) group score (median over
  subjects of the median over voxels), MAD across subjects, best layer;
  conditions ``model`` and the controls ``random_features`` / ``untrained``;
  ``task`` = ``all`` (every item) or a reasoning type (the model scored within
  that type's items, ``predictivity.within_types``).
  Layers follow the authors' concatenation (attention layers, then residual).
- ``predictivity_subjects.csv``: one row per (model, condition, subject, layer).
- ``nari.csv``: one row per (model, subject, layer, condition) of
  :func:`brainalign.steering.directions.nari_study`.
- ``nari_general_sweep.csv``: validation accuracy of every scale of the
  general directions (``nari_general``).
- ``finetune_epochs.csv``: per fine-tuning condition and epoch, train loss,
  brain loss and validation accuracy (all premise orders).
- ``evaluation_items.parquet``: every answer of every evaluated model
  (item × premise order) on the test and generalisation sets.
- ``steering.csv``: the summary, one row per (model, section, condition, set):
  ``accuracy_before``, ``accuracy_after``, ``n_items``, ``n_flipped``
  (wrong → right), ``n_broken`` (right → wrong), ``control`` (True for a
  control / baseline / ablation row), ``detail``. See :func:`run_steer`.
- ``finetuned/<model>/<condition>/``: merged fine-tuned models (safetensors)
  when ``finetune.output`` is ``merged_safetensors``.
- ``manifest.json``: config, seed, versions, summary numbers, timings.
"""
from __future__ import annotations

import copy
import io
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from brainalign._utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from brainalign.steering.config import SteerConfig, SteerConfigError
from brainalign.steering.data import ItemLabels

__all__ = ["check_inputs", "run_steer", "StudyInputs", "STEERING_COLUMNS"]

STEERING_COLUMNS = ["model", "section", "condition", "set", "control", "n_items", "accuracy_before",
                    "accuracy_after", "n_flipped", "n_broken", "detail"]


@dataclass
class StudyInputs(ItemLabels):
    """One model with the fMRI items, their betas and behaviour (what every section needs)."""

    name: str
    model: object
    tokenizer: object
    items: list
    subjects: list
    subjects_Y: list
    subjects_correct: list
    meta: dict = field(default_factory=dict)


def _root(cfg: SteerConfig, base_dir) -> Path:
    root = Path(cfg.brain.root)
    return root if root.is_absolute() else Path(base_dir) / root


def check_inputs(cfg: SteerConfig, base_dir: str | Path = ".") -> str:
    """Empty string when the study's inputs are present, else a report naming every missing file."""
    files = cfg.evaluation.files
    absent = [f"  - evaluation.files.{f}: {path}" for f, path in (files.paths(base_dir) if files else {}).items()
              if not path.is_file()]
    report = ""
    if absent:
        report = (f"{len(absent)} item file(s) named in evaluation.files are missing (the JSON files of the authors' "
                  "data/ folder, pkuxmq/Brain-guided_LLM; see docs/steering.md):\n" + "\n".join(absent))
    if cfg.brain is None:
        return report
    from brainalign.steering.data import describe_missing

    brain = describe_missing(_root(cfg, base_dir), cfg.brain.subjects, cfg.brain.betas, cfg.brain.items.runs)
    return "\n".join(r for r in (brain, report) if r)


def _model_folder(name: str, base_dir: Path) -> Path | None:
    """The local folder of a model entry (as :func:`_brain_inputs` resolves it), None for a hub id."""
    src = Path(name)
    if not src.is_absolute() and (Path(base_dir) / src).exists():
        src = Path(base_dir) / src
    return src if src.exists() else None


def model_config(name: str, base_dir: Path) -> dict:
    """config.json of a model entry, offline: its folder, or the Hugging Face cache for a hub id (``{}`` when the
    hub id is not cached).

    Raises
    ------
    SteerConfigError
        A folder without config.json.
    """
    import json

    folder = _model_folder(name, base_dir)
    if folder is not None:
        path = folder / "config.json"
        if not path.is_file():
            raise SteerConfigError(f"models: {name!r} is the folder {folder}, which has no config.json; give a "
                                   "checkpoint folder (config.json + *.safetensors) or a hub id.")
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(name, "config.json")
        except Exception:  # not a valid repo id
            path = None
        if not isinstance(path, (str, Path)):
            return {}
    try:
        return json.loads(Path(path).read_text())
    except ValueError:
        return {}


def _merged_model_bytes(cfg: dict) -> int:
    """float32 bytes of a merged fine-tuned model (embeddings + attention + MLP), from its config.json."""
    sub = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    h, n, v = sub.get("hidden_size"), sub.get("num_hidden_layers"), sub.get("vocab_size")
    if not all(isinstance(x, int) for x in (h, n, v)):
        return 0
    inner = sub.get("intermediate_size") if isinstance(sub.get("intermediate_size"), int) else 4 * h
    tied = bool(cfg.get("tie_word_embeddings", sub.get("tie_word_embeddings", False)))
    return 4 * (v * h * (1 if tied else 2) + n * (4 * h * h + 3 * h * inner))


def check_config(cfg: SteerConfig, base_dir: str | Path = ".", out: str | Path | None = None,
                 force_disk: bool = False, config_file: str | None = None) -> list[str]:
    """What ``steer --validate-only`` (and ``steer`` before it starts) checks beyond the input files, so that a
    run does not fail after hours: every model folder has a config.json (a hub id not in the local cache is a
    warning: the run loads offline), ``nari.layers`` lie within each model's decoder layers, and the merged
    fine-tuned models fit on the disk beside ``out``.

    Returns
    -------
    list of str
        Warnings (models not cached; little disk space; with ``force_disk``, too little).

    Raises
    ------
    SteerConfigError
        Naming the field and the fix (a disk shortfall: a :class:`~brainalign.config.ConfigError` naming
        ``--out``, the need and the free space).
    """
    from brainalign._utils.disk import DiskNeed, check_disk

    from brainalign.features.hf_loading import check_device

    try:  # a GPU named in the config must be here
        check_device(cfg.loading.device, "loading.device")
    except ValueError as err:
        raise SteerConfigError(str(err)) from None
    base_dir = Path(base_dir)
    depths, merged = {}, 0
    if cfg.planted is not None:
        depths["planted model"] = cfg.planted.num_layers
    notes = []
    for name in cfg.models if cfg.brain is not None else []:
        mc = model_config(name, base_dir)
        if not mc:
            notes.append(f"models: {name!r} is not a folder (relative to the config) and not in the local Hugging Face "
                         "cache; the study loads models offline, so it would stop when it reaches this model. Download "
                         f"it first (huggingface-cli download {name}) or fix the name. Its depth (nari.layers) and "
                         "size (disk) are not checked.")
        sub = mc.get("text_config") if isinstance(mc.get("text_config"), dict) else mc
        if isinstance(sub.get("num_hidden_layers"), int):
            depths[name] = sub["num_hidden_layers"]
        merged += _merged_model_bytes(mc)
    if cfg.nari is not None and isinstance(cfg.nari.layers, list):
        for name, n in depths.items():
            bad = [k for k in cfg.nari.layers if not 0 <= k < n]
            if bad:
                raise SteerConfigError(f"nari.layers has {bad}, outside the {n} decoder layers of {name} "
                                       f"(0..{n - 1}); choose layers in range, or 'middle' / 'all'.")
    ft = cfg.finetune
    if ft is not None and ft.output == "merged_safetensors" and out is not None and merged:
        n_conds = ft.n_arms
        need = DiskNeed(Path(out).absolute().parent, merged * n_conds,
                        f"{n_conds} merged fine-tuned model(s) per model (finetune.output: merged_safetensors)", "--out")
        notes += check_disk([need], force=force_disk, config_file=config_file)
    return notes


def steering_layers(spec, n_layers: int) -> list[int]:
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


def _predictivity_rows(cond: str, res: dict, n_layers: int, kinds, task: str = "all") -> tuple[list, list]:
    from brainalign.analysis import mad

    rows, subj_rows = [], []
    names = [f"{kind}_{k}" for kind in kinds for k in range(n_layers)]
    for j, name in enumerate(names):
        rows.append({"condition": cond, "task": task, "layer": j, "layer_name": name,
                     "score": float(res["group_curve"][j]), "mad": float(mad(res["subject_curves"][:, j])),
                     "best": j == res["best_layer"]})
        for s in range(res["subject_curves"].shape[0]):
            subj_rows.append({"condition": cond, "task": task, "subject": s, "layer": j, "layer_name": name,
                              "score": float(res["subject_curves"][s, j])})
    return rows, subj_rows


def generated_items(spec, n_premises: int = 3) -> list:
    from brainalign.steering.tasks import generate_items

    out = []
    for task in ("syllogism", "transitive"):
        n = getattr(spec, task)
        if n:
            out += generate_items(task, n, seed=spec.seed, n_premises=n_premises)
    return out


def expand_orders(items, all_orders: bool) -> list:
    from brainalign.steering.tasks import premise_orders

    return [o for it in items for o in (premise_orders(it) if all_orders else [it])]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


# ------------------------------------------------------------------------------------------------ inputs
def _planted_inputs(cfg: SteerConfig, tmp: Path) -> list[StudyInputs]:
    from brainalign.steering.simulate import planted_study

    p = cfg.planted
    st = planted_study(tmp / "model", seed=cfg.seed, n_items=p.n_items, arch=p.arch, hidden_size=p.hidden_size,
                       num_layers=p.num_layers, n_subjects=p.n_subjects, n_voxels=p.n_voxels, kappa=p.kappa,
                       noise=p.noise)
    return [StudyInputs("planted", st.model, st.tokenizer, st.items, [f"sim-{s + 1:02d}" for s in range(p.n_subjects)],
                        st.subjects_Y, st.subjects_correct,
                        {"source": "planted", "planted_layer": st.layer, "kappa": st.kappa})]


def _brain_inputs(cfg: SteerConfig, base_dir: Path, log):
    """Yields one :class:`StudyInputs` per model, loading each model only when the previous one is done."""
    from brainalign.steering.data import load_ds003076
    from brainalign.steering.models import load_causal_lm

    b = cfg.brain
    root = _root(cfg, base_dir)
    data = load_ds003076(root, b.subjects, b.betas, b.items.runs, b.items.drop, b.drop_nan_voxels)
    log(f"ds003076: {len(data.items)} items, {len(data.subjects)} subjects, voxels "
        f"{[Y.shape[1] for Y in data.subjects_Y]}")
    for name in cfg.models:
        src = Path(name)
        if not src.is_absolute() and (base_dir / src).exists():
            src = base_dir / src
        log(f"loading {name}")
        model, tok = load_causal_lm(src if src.exists() else name, dtype=cfg.loading.dtype, device=cfg.loading.device)
        yield StudyInputs(name, model, tok, data.items, data.subjects, data.subjects_Y, data.subjects_correct,
                          {"source": "ds003076", "root": str(root), "dropped_voxels": data.dropped_voxels})
        del model, tok  # at most one model in memory


# ------------------------------------------------------------------------------------------------ sections
def _model_answers(model, tok, items):
    from brainalign.steering.directions import accuracy_with_offset
    from brainalign.steering.tasks import item_prompt

    prompts = [item_prompt(it, tok) for it in items]
    return prompts, accuracy_with_offset(model, tok, prompts, [it.label for it in items], None)["correct"]


def _flips(before, after) -> tuple[int, int]:
    before, after = np.asarray(before, bool), np.asarray(after, bool)
    return int((~before & after).sum()), int((before & ~after).sum())


def _summary_row(model, section, condition, set_name, control, before, after, detail="") -> dict:
    fl, br = _flips(before, after)
    return {"model": model, "section": section, "condition": condition, "set": set_name, "control": bool(control),
            "n_items": int(np.size(before)), "accuracy_before": float(np.mean(before)),
            "accuracy_after": float(np.mean(after)), "n_flipped": fl, "n_broken": br, "detail": detail}


def _section_predictivity(cfg, inp: StudyInputs, states, log) -> tuple[list, list, dict]:
    from brainalign.steering import encoders
    from brainalign.steering.hooks import last_token_states
    from brainalign.steering.models import untrained_copy

    kinds = list(cfg.representations.kinds)
    pr = cfg.predictivity
    reps = {"model": _stack(states, kinds)}
    if "random_features" in pr.controls:
        reps["random_features"] = encoders.random_features(*reps["model"].shape, seed=cfg.seed)
    if "untrained" in pr.controls:
        fresh = untrained_copy(inp.model, seed=cfg.seed + 1)
        prompts = [p for p in inp.meta["prompts"]]
        reps["untrained"] = _stack(last_token_states(fresh, inp.tokenizer, prompts, kinds=tuple(kinds)), kinds)
    ceiling = None
    if pr.ceiling is not None and len(inp.subjects_Y) >= 3:
        ceiling = encoders.deductive_ceiling(inp.subjects_Y, inp.task_labels, pr.n_folds, cfg.seed, pr.alphas,
                                             pr.ceiling.max_combinations, pr.ceiling.n_bootstrap)
    rows, subj_rows, summary = [], [], {}
    n_layers = states[kinds[0]].shape[1]
    for cond, R in reps.items():
        res = encoders.neural_predictivity(R, inp.subjects_Y, inp.task_labels, pr.n_folds, cfg.seed, pr.alphas,
                                           pr.alpha_mode, ceiling=ceiling)
        a, b = _predictivity_rows(cond, res, n_layers, kinds)
        rows += a
        subj_rows += b
        summary[cond] = {"score": res["score"], "best_layer": res["best_layer"], "mad": res["mad"]}
        log(f"[{inp.name}] predictivity {cond}: {res['score']:.3f} (layer {res['best_layer']})")
    labels = np.asarray(inp.task_labels)
    counts = {t: int((labels == t).sum()) for t in dict.fromkeys(labels.tolist())}
    small = [f"{t} ({n})" for t, n in counts.items() if n < 2 * pr.n_folds]
    if pr.within_types and (len(counts) < 2 or small):
        log(f"[{inp.name}] predictivity within types skipped: "
            + ("one reasoning type only" if len(counts) < 2 else f"fewer than {2 * pr.n_folds} items in "
               + ", ".join(small)))
    elif pr.within_types:
        use_ceiling = ceiling is not None
        within = encoders.within_type_predictivity(
            reps["model"], inp.subjects_Y, inp.task_labels, pr.n_folds, cfg.seed, pr.alphas, pr.alpha_mode,
            ceiling="subject_subset" if use_ceiling else None,
            ceiling_options=dict(max_combinations=pr.ceiling.max_combinations, n_bootstrap=pr.ceiling.n_bootstrap)
            if use_ceiling else None)
        summary["model"]["within_types"] = {}
        for task, res in within.items():
            a, b = _predictivity_rows("model", res, n_layers, kinds, task=str(task))
            rows += a
            subj_rows += b
            summary["model"]["within_types"][str(task)] = {"score": res["score"], "best_layer": res["best_layer"]}
            log(f"[{inp.name}] predictivity within {task}: {res['score']:.3f} (layer {res['best_layer']})")
    return rows, subj_rows, summary


def _section_nari(cfg, inp: StudyInputs, states, model_correct, layers, log):
    from brainalign.steering.directions import nari_study

    nc = cfg.nari
    table, results = nari_study(inp.model, inp.tokenizer, inp.meta["prompts"], inp.labels, states["attention"],
                                inp.subjects_Y, inp.subjects_correct, model_correct, layers=layers,
                                controls=list(nc.controls), seed=cfg.seed,
                                task_labels=inp.task_labels if nc.encoder_per_task else None,
                                fit_consistent_questions=nc.fit_consistent_questions, loss=nc.loss,
                                proj_alpha=nc.proj_alpha, max_steps=nc.max_steps, check_every=nc.check_every,
                                lr_factor=nc.lr_factor)
    summary, rows = {}, []
    mc = np.asarray(model_correct, bool)
    acc0 = float(np.mean(mc))
    for cond, g in table.groupby("condition", sort=False):
        # per (subject, layer): the items the model gets right plus those NARI solved (of every reasoning type)
        per_unit = g.groupby(["subject", "layer"], sort=False)
        fractions = per_unit["flipped"].sum() / per_unit["n_items"].sum().clip(lower=1)
        acc_after = (mc.sum() + per_unit["flipped"].sum()) / mc.size
        summary[cond] = {"flipped_fraction": float(fractions.mean()), "intervened_accuracy": float(acc_after.mean())}
        rows.append({"model": inp.name, "section": "nari", "condition": cond, "set": "fmri_items",
                     "control": cond != "fmri", "n_items": int(g["n_items"].sum()), "accuracy_before": acc0,
                     "accuracy_after": summary[cond]["intervened_accuracy"], "n_flipped": int(g["flipped"].sum()),
                     "n_broken": 0, "detail": f"subjects x layers {per_unit.ngroups}; "
                                              f"{'encoders per reasoning type; ' if nc.encoder_per_task else ''}"
                                              "n_items = intervened (subject, layer, item) units; accuracy_after = "
                                              "mean intervened accuracy"})
        log(f"[{inp.name}] NARI {cond}: flipped {summary[cond]['flipped_fraction']:.3f}, intervened accuracy "
            f"{summary[cond]['intervened_accuracy']:.3f}")
    fmri_results = [r for r, c in zip(results, table["condition"]) if c == "fmri"]
    return table, fmri_results, summary, rows


def _direction_offsets(directions: dict, items) -> dict:
    """{layer: (n_items, d)} from per-task directions ({task: {layer: vec}}) or shared ones ({"all": ...})."""
    layers = sorted({k for dirs in directions.values() for k in dirs})
    out = {}
    for k in layers:
        rows = []
        for it in items:
            dirs = directions.get(it.task, directions.get("all", {}))
            v = dirs.get(k)
            if v is None:
                v = np.zeros_like(next(iter(d[k] for d in directions.values() if k in d)))
            rows.append(v)
        out[k] = np.stack(rows).astype(np.float32)
    return out


def _section_nari_general(cfg, inp: StudyInputs, fmri_results, log, base_dir: Path = Path(".")):
    from brainalign.steering.directions import accuracy_with_offset, general_direction, scale_sweep
    from brainalign.steering.tasks import item_prompt

    g = cfg.nari_general
    tasks = inp.task_labels
    if g.aggregate == "per_task":
        directions = {}
        for task in sorted(set(tasks)):
            sub = []
            for r in fmri_results:
                keep = tasks[r.items] == task
                sub.append(type(r)(r.items[keep], r.solved[keep], r.deltas[keep], r.steps_to_solve[keep], r.layer))
            d = general_direction(sub, normalize=g.normalize)
            if d:
                directions[task] = d
    else:
        d = general_direction(fmri_results, normalize=g.normalize)
        directions = {"all": d} if d else {}
    if not directions:
        log(f"[{inp.name}] general directions: no NARI success to average; section skipped")
        return [], [], {}
    scales = np.round(np.arange(g.scales.min, g.scales.max + g.scales.step / 2, g.scales.step), 6)
    all_orders = cfg.evaluation.all_orders
    val = expand_orders(validation_items(cfg, g.validation, base_dir), all_orders)
    test = expand_orders(generated_items(g.test), all_orders)
    val_prompts = [item_prompt(it, inp.tokenizer) for it in val]
    test_prompts = [item_prompt(it, inp.tokenizer) for it in test]
    sweep = scale_sweep(inp.model, inp.tokenizer, val_prompts, [it.label for it in val],
                        _direction_offsets(directions, val), scales=list(scales))
    best = sweep["best_scale"]
    sweep_rows = [{"model": inp.name, "scale": float(s), "val_accuracy": float(a), "best": float(s) == best}
                  for s, a in zip(sweep["scales"], sweep["accuracy"])]
    offs = _direction_offsets(directions, test)
    labels = [it.label for it in test]
    before = accuracy_with_offset(inp.model, inp.tokenizer, test_prompts, labels, None)["correct"]
    after = accuracy_with_offset(inp.model, inp.tokenizer, test_prompts, labels,
                                 {k: best * v for k, v in offs.items()})["correct"]
    rng = np.random.default_rng(cfg.seed + 7)
    rand = {}
    for k, v in offs.items():  # a random direction per (task, layer) with the general direction's norm
        r = rng.standard_normal(v.shape[1])
        r /= np.linalg.norm(r)
        rand[k] = (best * np.linalg.norm(v, axis=1, keepdims=True) * r[None]).astype(np.float32)
    ctrl = accuracy_with_offset(inp.model, inp.tokenizer, test_prompts, labels, rand)["correct"]
    detail = f"aggregate={g.aggregate}; best scale {best:g} by validation ({len(val)} prompts)"
    rows = [_summary_row(inp.name, "nari_general", "general_direction", "test", False, before, after, detail),
            _summary_row(inp.name, "nari_general", "random_direction", "test", True, before, ctrl,
                         detail + "; random directions of the same norm")]
    log(f"[{inp.name}] general directions: best scale {best:g}, test accuracy {before.mean():.3f} -> "
        f"{after.mean():.3f} (random direction {ctrl.mean():.3f})")
    return sweep_rows, rows, {"best_scale": best, "test_before": float(before.mean()),
                              "test_after": float(after.mean()), "test_random": float(ctrl.mean())}


def file_set_name(path: str | Path) -> str:
    """``file_<stem>`` of an item file, less the authors' prefix ``deductive_reasoning_data_``."""
    stem = Path(path).stem
    return "file_" + (stem[len("deductive_reasoning_data_"):] if stem.startswith("deductive_reasoning_data_") else stem)


def validation_items(cfg, spec, base_dir: str | Path = ".") -> list:
    """The validation problems of a section: the authors' validation file when ``evaluation.files.validation`` is
    set, else the generated set ``spec``."""
    files = cfg.evaluation.files
    if files is not None and files.validation:
        from brainalign.steering.item_files import read_item_file

        return read_item_file(files.paths(base_dir)["validation"])
    return generated_items(spec)


def eval_sets(cfg, base_dir: str | Path = ".", skip_missing: bool = False) -> list[tuple[str, list, bool]]:
    """(name, items under their premise orders, all_orders) of every evaluation set: the generated test and
    generalisation sets, then the authors' files (``evaluation.files``; ``skip_missing`` leaves out a file that
    is not there, for the dry run)."""
    from brainalign.steering.item_files import read_item_file
    from brainalign.steering.tasks import generate_items

    ev = cfg.evaluation
    sets = [("test", expand_orders(generated_items(ev.test), ev.all_orders), ev.all_orders)]
    for gspec in ev.generalisation:
        n_prem = gspec.n_premises or 3
        if gspec.task is None:
            spec = ev.test.model_copy(update={k: (gspec.n if gspec.n else getattr(ev.test, k))
                                              for k in ("syllogism", "transitive")})
            items = generated_items(spec, n_premises=n_prem)
        else:
            items = generate_items(gspec.task, gspec.n or ev.test.syllogism, seed=ev.test.seed, n_premises=n_prem)
        name = f"{gspec.task or 'deductive'}_{n_prem}premises"
        # all orders only up to 4 premises (24 orders); 5-6 premises have 120-720 orders per item
        orders = ev.all_orders and n_prem <= 4
        sets.append((name, expand_orders(items, orders), orders))
    if ev.files is not None:
        for field_name, path in ev.files.paths(base_dir).items():
            if field_name == "validation" or (skip_missing and not path.is_file()):
                continue
            items = read_item_file(path)
            orders = ev.all_orders and max(len(it.premises) for it in items) <= 4  # as for the generated sets
            sets.append((file_set_name(path), expand_orders(items, orders), orders))
    return sets


def _answers_table(model_name, condition, set_name, items, correct) -> "object":
    import pandas as pd

    return pd.DataFrame({"model": model_name, "condition": condition, "set": set_name,
                         "item_id": [it.item_id for it in items], "task": [it.task for it in items],
                         "n_premises": [len(it.premises) for it in items], "label": [it.label for it in items],
                         "correct": np.asarray(correct, bool)})


def finetune_consistent(cfg) -> bool:
    """finetune.fit_consistent_questions, or (null) nari's, or False."""
    ft = cfg.finetune
    if ft.fit_consistent_questions is not None:
        return ft.fit_consistent_questions
    return bool(cfg.nari is not None and cfg.nari.fit_consistent_questions)


def _section_finetune(cfg, inp: StudyInputs, states, model_correct, layers, out: Path, log,
                      base_dir: Path = Path(".")):
    from brainalign.steering.directions import accuracy_with_offset, random_fmri
    from brainalign.steering.encoders import fit_item_encoder
    from brainalign.steering.finetune import brain_finetune, labels_as_fmri
    from brainalign.steering.tasks import item_prompt

    ft = cfg.finetune.for_model(inp.name if cfg.brain is not None else "planted")
    X = states["attention"]
    labels = inp.labels
    tasks = inp.task_labels
    consistent = finetune_consistent(cfg)

    def encoders_for(Ys):
        return [{layer: fit_item_encoder(X[:, layer], Y, tasks, per_task=ft.encoder_per_task,
                                         keep=(np.asarray(model_correct) & np.asarray(sc)) if consistent else None)
                 for layer in layers} for Y, sc in zip(Ys, inp.subjects_correct)]

    # (condition, control, brain_weight, betas, label_weight, lr, adapter)
    conds = []
    if ft.mode == "narf+label":
        conds.append(("narf_label", False, ft.brain_weight, list(inp.subjects_Y), ft.label_weight, ft.lr, "lora"))
    conds.append(("label_only", ft.mode == "narf+label", 0.0, [], ft.label_weight, ft.lr, "lora"))
    if ft.narf is not None:  # pure NARF: the brain targets alone, full self-attention parameters
        conds.append(("narf", False, ft.narf.brain_weight, list(inp.subjects_Y), 0.0, ft.narf.lr, "full"))
    if "random_fmri" in ft.ablations:
        conds.append(("random_fmri", True, ft.brain_weight,
                      [random_fmri(Y, cfg.seed + s) for s, Y in enumerate(inp.subjects_Y)], ft.label_weight, ft.lr,
                      "lora"))
    if "labels_as_fmri" in ft.ablations:
        conds.append(("labels_as_fmri", True, ft.brain_weight, [labels_as_fmri(labels)] * len(inp.subjects_Y),
                      ft.label_weight, ft.lr, "lora"))
    val = expand_orders(validation_items(cfg, ft.validation_items, base_dir), True)
    val_prompts = [item_prompt(it, inp.tokenizer) for it in val]
    sets = eval_sets(cfg, base_dir)
    set_prompts = {name: [item_prompt(it, inp.tokenizer) for it in items] for name, items, _ in sets}
    base = {}
    tables = []
    for name, items, _ in sets:
        base[name] = accuracy_with_offset(inp.model, inp.tokenizer, set_prompts[name], [it.label for it in items],
                                          None)["correct"]
        tables.append(_answers_table(inp.name, "base", name, items, base[name]))
    rows, epoch_rows, summary = [], [], {}
    for cond, control, w, Ys, lw, lr, adapter in conds:
        res = brain_finetune(copy.deepcopy(inp.model), inp.tokenizer, inp.meta["prompts"], labels, layers=layers,
                             encoders=encoders_for(Ys) if w > 0 else (), subjects_Y=Ys if w > 0 else (),
                             brain_weight=w, label_weight=lw, lr=lr, epochs=ft.max_epoch,
                             grad_accumulate=min(ft.grad_accumulate, labels.size), seed=cfg.seed,
                             val_prompts=val_prompts, val_labels=[it.label for it in val], lora_r=ft.lora.r,
                             lora_alpha=ft.lora.alpha, adapter=adapter, item_tasks=tasks,
                             output_dir=(out / "finetuned" / _safe(inp.name) / cond
                                         if ft.output == "merged_safetensors" else None))
        for e in range(len(res.train_loss)):
            epoch_rows.append({"model": inp.name, "condition": cond, "epoch": e, "train_loss": res.train_loss[e],
                               "brain_loss": res.brain_loss[e], "val_accuracy": res.val_accuracy[e],
                               "best": e == res.best_epoch})
        summary[cond] = {"best_epoch": res.best_epoch}
        for name, items, orders in sets:
            after = accuracy_with_offset(res.model, inp.tokenizer, set_prompts[name], [it.label for it in items],
                                         None)["correct"]
            tables.append(_answers_table(inp.name, cond, name, items, after))
            rows.append(_summary_row(inp.name, "finetune", cond, name, control, base[name], after,
                                     f"brain_weight={w:g}; label_weight={lw:g}; lr={lr:g}; "
                                     f"{'LoRA' if adapter == 'lora' else 'full self-attention'}; "
                                     f"max_epoch={ft.max_epoch}; best epoch {res.best_epoch}; "
                                     f"{'all premise orders' if orders else 'original order'}"))
            summary[cond][name] = float(after.mean())
        log(f"[{inp.name}] fine-tuning {cond}: test accuracy {base['test'].mean():.3f} -> {summary[cond]['test']:.3f}"
            f" (best epoch {res.best_epoch})")
    return rows, epoch_rows, tables, summary


# ------------------------------------------------------------------------------------------------ driver
def run_steer(cfg: SteerConfig, out: str | Path, base_dir: str | Path = ".",
              log: Callable[[str], None] = lambda s: None) -> dict:
    """Run every section of ``cfg`` for every model; write the tables of the module docstring into ``out``.

    Returns the manifest (also written to ``out/manifest.json``).
    """
    import tempfile

    import pandas as pd
    import torch

    from brainalign.steering.hooks import last_token_states

    out = Path(out)
    base_dir = Path(base_dir)
    missing = check_inputs(cfg, base_dir)
    if missing:
        raise FileNotFoundError(missing)
    t0 = time.perf_counter()
    timings: dict = {}
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    tables: dict[str, list] = {k: [] for k in ("predictivity", "predictivity_subjects", "nari", "nari_general_sweep",
                                               "finetune_epochs", "steering", "evaluation_items")}
    manifest_models = {}
    with tempfile.TemporaryDirectory(prefix="brainalign-steer-") as tmp:  # the planted model is rebuilt from the seed
        if cfg.planted is not None:
            p = cfg.planted
            log(f"planted study: {p.arch}, {p.num_layers} layers, {p.n_items} items, {p.n_subjects} subjects")
            inputs = _planted_inputs(cfg, Path(tmp))
        else:
            inputs = _brain_inputs(cfg, base_dir, log)
        timings["inputs"] = round(time.perf_counter() - t0, 3)
        for inp in inputs:
            tm = {}
            t1 = time.perf_counter()
            inp.meta["prompts"], model_correct = _model_answers(inp.model, inp.tokenizer, inp.items)
            states = last_token_states(inp.model, inp.tokenizer, inp.meta["prompts"])
            n_layers = states["attention"].shape[1]
            layers = steering_layers(cfg.nari.layers if cfg.nari is not None else "middle", n_layers)
            info = {"model_accuracy": float(np.mean(model_correct)), "n_items": len(inp.items),
                    "subjects": inp.subjects, "layers": layers,
                    **{k: v for k, v in inp.meta.items() if k != "prompts"}}
            log(f"[{inp.name}] accuracy on the {len(inp.items)} fMRI items: {info['model_accuracy']:.3f}")
            if cfg.predictivity is not None:
                a, b, info["predictivity"] = _section_predictivity(cfg, inp, states, log)
                tables["predictivity"] += [dict(model=inp.name, **r) for r in a]
                tables["predictivity_subjects"] += [dict(model=inp.name, **r) for r in b]
                tm["predictivity"] = round(time.perf_counter() - t1, 3)
            fmri_results = []
            if cfg.nari is not None:
                t2 = time.perf_counter()
                table, fmri_results, info["nari"], rows = _section_nari(cfg, inp, states, model_correct, layers, log)
                table.insert(0, "model", inp.name)
                tables["nari"].append(table)
                tables["steering"] += rows
                tm["nari"] = round(time.perf_counter() - t2, 3)
            if cfg.nari_general is not None:
                if cfg.nari is None:
                    raise SteerConfigError("nari_general averages NARI's successful offsets; give a 'nari' section too.")
                t3 = time.perf_counter()
                sweep, rows, info["nari_general"] = _section_nari_general(cfg, inp, fmri_results, log,
                                                                          base_dir)
                tables["nari_general_sweep"] += sweep
                tables["steering"] += rows
                tm["nari_general"] = round(time.perf_counter() - t3, 3)
            if cfg.finetune is not None:
                t4 = time.perf_counter()
                rows, epochs, answers, info["finetune"] = _section_finetune(cfg, inp, states, model_correct, layers,
                                                                            out, log, base_dir)
                tables["steering"] += rows
                tables["finetune_epochs"] += epochs
                tables["evaluation_items"] += answers
                tm["finetune"] = round(time.perf_counter() - t4, 3)
            info["timings_s"] = tm
            manifest_models[inp.name] = info
            del inp, states  # free the model before the next one is loaded
    written = []
    for name, rows in tables.items():
        if not rows:
            continue
        if name in ("nari", "evaluation_items"):
            df = pd.concat(rows, ignore_index=True)
        else:
            df = pd.DataFrame(rows)
        if name == "steering":
            df = df[STEERING_COLUMNS]
        if name == "evaluation_items":
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            atomic_write_bytes(out / f"{name}.parquet", buf.getvalue())
            written.append(f"{name}.parquet")
        else:
            atomic_write_text(out / f"{name}.csv", df.to_csv(index=False))
            written.append(f"{name}.csv")
    timings["total"] = round(time.perf_counter() - t0, 3)
    from brainalign.report.results import package_versions

    first = next(iter(manifest_models.values()))
    manifest = {"name": cfg.name, "seed": cfg.seed, "source": "planted" if cfg.planted is not None else "ds003076",
                "config": cfg.model_dump(mode="json"), "models": manifest_models, "timings_s": timings,
                "versions": {**package_versions(), "python": platform.python_version()}, "tables": written,
                # single-model shortcuts (the planted study has exactly one)
                "model_accuracy": first["model_accuracy"], "nari_layers": first["layers"],
                "predictivity": first.get("predictivity"), "nari": first.get("nari")}
    if cfg.planted is not None:
        manifest.update(planted_layer=first["planted_layer"], kappa=first["kappa"])
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
