"""What a steering study costs on GPUs (``brainalign steer --dry-run``), without loading a model or the betas.

Forward passes per model and section, from the config's counts (the fMRI items of ds003076, or of the planted
study, and the generated evaluation sets, which are generated here exactly as the run generates them), priced by
:mod:`brainalign.features.throughput`. NARI's count is an upper bound: every item is checked at every
``check_every`` step until ``max_steps``, whereas the run stops checking an item once it is solved.
"""
from __future__ import annotations

import math
from pathlib import Path

from brainalign.steering.config import SteerConfig

__all__ = ["steer_plan", "DS003076_ITEMS"]

#: fMRI items of ds003076 after the authors' two contradictory items are dropped (docs/steering.md).
DS003076_ITEMS = 70


def _item_passes(cfg: SteerConfig, names, base_dir: Path, notes: list) -> dict[str, dict[str, int]]:
    """Forward passes of each model of ``names`` per section that do not depend on its depth (the sets as the run
    builds them, once; an item file of ``evaluation.files`` that is not there is left out and named in ``notes``).
    Only the finetune section differs between models (``finetune.per_model``)."""
    from brainalign.steering.study import eval_sets, expand_orders, generated_items, validation_items

    n_items = cfg.planted.n_items if cfg.planted is not None else DS003076_ITEMS
    out = {"representations": n_items}
    if cfg.predictivity is not None and "untrained" in cfg.predictivity.controls:
        out["representations"] += n_items  # the random-init copy reads the same items
    orders = cfg.evaluation.all_orders
    files = cfg.evaluation.files
    missing = [f"evaluation.files.{f} ({p})" for f, p in (files.paths(base_dir) if files else {}).items()
               if not p.is_file()]
    if missing:
        notes.append("item files not found, not counted: " + ", ".join(missing))
    val_file = files is not None and files.validation and files.paths(base_dir)["validation"].is_file()

    def val_items(spec):
        return validation_items(cfg, spec, base_dir) if val_file else generated_items(spec)

    if cfg.nari_general is not None:
        g = cfg.nari_general
        n_scales = int(round((g.scales.max - g.scales.min) / g.scales.step)) + 1
        out["nari_general"] = (n_scales * len(expand_orders(val_items(g.validation), orders))
                               + 3 * len(expand_orders(generated_items(g.test), orders)))
    n_eval = sum(len(items) for _, items, _ in eval_sets(cfg, base_dir, skip_missing=True))
    val = len(expand_orders(val_items(cfg.finetune.validation_items), True)) if cfg.finetune is not None else 0
    per_model = {}
    for name in names:
        own = dict(out)
        n_conds = 1
        if cfg.finetune is not None:
            ft = cfg.finetune.for_model(name)
            n_conds += ft.n_arms
            own["finetune"] = ft.n_arms * ft.max_epoch * (3 * n_items + val)  # forward + backward ≈ 3 forwards
        own["evaluation"] = n_conds * n_eval
        per_model[name] = own
    return per_model


def _nari_passes(cfg: SteerConfig, n_layers: int) -> int:
    """Upper bound of NARI's greedy checks: every item of every subject, layer and condition at every check."""
    from brainalign.steering.study import steering_layers

    if cfg.nari is None:
        return 0
    n_items = cfg.planted.n_items if cfg.planted is not None else DS003076_ITEMS
    n_subjects = cfg.planted.n_subjects if cfg.planted is not None else len(cfg.brain.subjects)
    # the concatenated [attention, residual] index has 2 L entries; NARI intervenes on attention outputs
    layers = steering_layers(cfg.nari.layers, 2 * n_layers) if cfg.nari.layers != "all" else list(range(n_layers))
    checks = math.ceil(cfg.nari.max_steps / cfg.nari.check_every)
    return n_subjects * len(layers) * (1 + len(cfg.nari.controls)) * n_items * checks


def steer_plan(cfg: SteerConfig, base_dir: str | Path = ".") -> str:
    """The dry-run's text: per model, its forward passes per section, the passes per second assumed and the
    GPU-hours (:data:`brainalign.features.throughput.RULE`)."""
    from brainalign.features.throughput import RULE, TOKENS_PER_PASS, forward_cost, model_params
    from brainalign.steering.study import model_config

    assumed: list[str] = []
    if cfg.planted is not None:
        p = cfg.planted
        cfgs = {"planted model": {"hidden_size": p.hidden_size, "num_hidden_layers": p.num_layers,
                                  "intermediate_size": 2 * p.hidden_size, "vocab_size": 600, "hidden_act": "silu"}}
    else:
        cfgs = {name: model_config(name, Path(base_dir)) for name in cfg.models}
    lines = [f"steering study '{cfg.name}': {len(cfgs)} model(s); loading: {cfg.loading.dtype} on "
             f"{cfg.loading.device or 'a GPU when one is seen, else the CPU'}"]
    total = 0.0
    notes: list[str] = []
    passes = _item_passes(cfg, ["planted"] if cfg.planted is not None else list(cfgs), Path(base_dir), notes)
    for name, mc in cfgs.items():
        sub = mc.get("text_config") if isinstance(mc.get("text_config"), dict) else mc
        n_layers = sub.get("num_hidden_layers") if isinstance(sub.get("num_hidden_layers"), int) else None
        if n_layers is None:
            n_layers = 32
            assumed.append(f"{name}: 32 decoder layers (config not local)")
        sections = dict(passes["planted" if cfg.planted is not None else name])
        if cfg.nari is not None:
            sections["nari (upper bound)"] = _nari_passes(cfg, n_layers)
        cost = forward_cost(model_params(name, mc, assumed), TOKENS_PER_PASS["steering"], sum(sections.values()),
                            cfg.loading.dtype)
        total += cost.gpu_hours
        lines.append(f"  {name}: {cost.describe()}")
        lines.append("    " + "; ".join(f"{k} {v:,}" for k, v in sections.items()))
    lines.append(f"steering: about {total:,.1f} GPU-hours in all, assuming {RULE}")
    if assumed:
        lines.append("assumed: " + "; ".join(assumed))
    lines += sorted(set(notes))
    return "\n".join(lines)
