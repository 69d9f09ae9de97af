"""NARI: neural-aligned representation intervention (Xiao et al. ``make_intervention_sep.py``), and general directions.

For one subject and one layer ℓ: with a fitted encoder ``y ≈ x Wᵀ + b`` from
last-token attention outputs to that subject's betas, learn per-item offsets Δ
(init 0) with AdamW (lr = 0.1 × mean|X|) on a brain loss between
``(X + Δ) Wᵀ + b`` and the betas ``y`` (default −cos), project each Δᵢ to
‖Δᵢ‖ ≤ proj_alpha · σ (σ² = mean ‖Xᵢ − X̄‖²) after every step, and every
``check_every`` steps greedy-decode the unsolved items with Δ added to the
last-token attention output of ℓ. An item whose answer becomes correct is
solved and frozen; an invalid answer reverts its Δ to its last valid value.
``control="random"`` decodes with random directions whose norm matches the
optimised Δ step by step (the paper's random-direction control).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from brainalign.steering.encoders import LinearEncoder
from brainalign.steering.hooks import greedy_answers
from brainalign.steering.tasks import parse_answer

__all__ = ["NariResult", "nari", "nari_study", "middle_layers", "intervention_set", "random_fmri", "general_direction", "scale_sweep",
           "accuracy_with_offset"]


@dataclass
class NariResult:
    """Outcome for one subject and layer.

    Attributes
    ----------
    items : ndarray of int (m,)   indices of the intervened items
    solved : bool ndarray (m,)    answer flipped to correct
    deltas : ndarray (m, d)       final offsets (solved ones frozen at success)
    steps_to_solve : ndarray (m,) step of success, -1 if never
    layer : int
    """

    items: np.ndarray
    solved: np.ndarray
    deltas: np.ndarray
    steps_to_solve: np.ndarray
    layer: int
    history: list = field(default_factory=list)

    @property
    def flipped_fraction(self) -> float:
        return float(self.solved.mean()) if self.solved.size else 0.0


def intervention_set(model_correct, subject_correct) -> np.ndarray:
    """Indices of items the model gets wrong and the subject gets right."""
    m = np.asarray(model_correct, dtype=bool)
    s = np.asarray(subject_correct, dtype=bool)
    if m.shape != s.shape:
        raise ValueError(f"model_correct has shape {m.shape} but subject_correct {s.shape}.")
    return np.flatnonzero(~m & s)


def random_fmri(Y, seed: int = 0, keep_mean: bool = False) -> np.ndarray:
    """Gaussian "fMRI" with Y's shape and per-voxel std (plus Y's per-voxel mean when ``keep_mean``)."""
    Y = np.asarray(Y, dtype=np.float64)
    Z = np.random.default_rng(seed).standard_normal(Y.shape) * Y.std(0)
    return Z + Y.mean(0) if keep_mean else Z


def _brain_loss(pred, y, kind: str):
    import torch

    if kind == "cosine":
        return -torch.nn.functional.cosine_similarity(pred, y, dim=1).mean()
    if kind == "mse":
        return ((pred - y) ** 2).mean()
    if kind == "pearson":  # across items, per voxel
        pc = pred - pred.mean(0)
        yc = y - y.mean(0)
        return -((pc * yc).sum(0) / (pc.norm(dim=0) * yc.norm(dim=0) + 1e-8)).mean()
    raise ValueError(f"loss={kind!r}; use 'cosine', 'mse' or 'pearson'.")


def nari(model, tokenizer, prompts: Sequence[str], labels, X, encoder: LinearEncoder, Y, items, layer: int, *,
         loss: str = "cosine", proj_alpha: float = 10.0, max_steps: int = 200, check_every: int = 5,
         control: str | None = None, seed: int = 0, max_new_tokens: int = 1, lr_factor: float = 0.1) -> NariResult:
    """Run NARI on the items ``items`` (indices into prompts / X / Y) at decoder layer ``layer``.

    Parameters
    ----------
    prompts : list of str (n_items,)         rendered chats
    labels : bool array (n_items,)            ground truth
    X : ndarray (n_items, d)                  last-token attention outputs at ``layer`` (all items: sets lr and σ)
    encoder : LinearEncoder                   coef (d, n_voxels)
    Y : ndarray (n_items, n_voxels)           the subject's betas (or a random-fMRI control)
    items : int array (m,)                    intervention set
    control : None or "random"                decode with random directions of matched norm
    lr_factor : float                         AdamW lr = lr_factor × mean|X| (the authors: 0.1)
    """
    import torch

    X = np.asarray(X, dtype=np.float32)
    items = np.asarray(items, dtype=int)
    labels = np.asarray(labels, dtype=bool)
    if control not in (None, "random"):
        raise ValueError(f"control={control!r}; use None or 'random'.")
    if encoder.coef.shape[0] != X.shape[1]:
        raise ValueError(f"encoder expects {encoder.coef.shape[0]} features but X has {X.shape[1]}.")
    m, d = items.size, X.shape[1]
    if m == 0:
        return NariResult(items, np.zeros(0, bool), np.zeros((0, d), np.float32), np.zeros(0, int), layer)
    sigma = float(np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean()))
    radius = proj_alpha * sigma
    Xi = torch.as_tensor(X[items])
    Yi = torch.as_tensor(np.asarray(Y, dtype=np.float32)[items])
    W = torch.as_tensor(encoder.coef, dtype=torch.float32)
    b = torch.as_tensor(encoder.intercept, dtype=torch.float32)
    delta = torch.zeros((m, d), requires_grad=True)
    opt = torch.optim.AdamW([delta], lr=lr_factor * float(np.abs(X).mean()))
    rng = np.random.default_rng(seed)
    rand_dirs = rng.standard_normal((m, d)).astype(np.float32)
    rand_dirs /= np.linalg.norm(rand_dirs, axis=1, keepdims=True)
    active = np.ones(m, dtype=bool)
    solved = np.zeros(m, dtype=bool)
    steps = np.full(m, -1)
    last_valid = torch.zeros((m, d))
    history = []
    for step in range(1, max_steps + 1):
        opt.zero_grad()
        _brain_loss((Xi + delta) @ W + b, Yi, loss).backward()
        with torch.no_grad():
            delta.grad[torch.as_tensor(~active)] = 0.0
        frozen = delta.detach().clone()
        opt.step()
        with torch.no_grad():
            delta[torch.as_tensor(~active)] = frozen[torch.as_tensor(~active)]  # AdamW decay must not move them
            norms = delta.norm(dim=1, keepdim=True)
            delta.mul_(torch.clamp(radius / (norms + 1e-12), max=1.0))
        if step % check_every and step != max_steps:
            continue
        idx = np.flatnonzero(active)
        off = delta.detach().numpy()[idx]
        if control == "random":
            off = rand_dirs[idx] * np.linalg.norm(off, axis=1, keepdims=True)
        texts = greedy_answers(model, tokenizer, [prompts[items[i]] for i in idx], {layer: off},
                               max_new_tokens=max_new_tokens)
        with torch.no_grad():
            for j, i in enumerate(idx):
                ans = parse_answer(texts[j])
                if ans is None:
                    delta[i] = last_valid[i]
                    continue
                last_valid[i] = delta[i].detach().clone()
                if ans == bool(labels[items[i]]):
                    solved[i], active[i], steps[i] = True, False, step
                    if control == "random":
                        delta[i] = torch.as_tensor(off[j])
        history.append((step, int(solved.sum())))
        if not active.any():
            break
    return NariResult(items, solved, delta.detach().numpy().copy(), steps, layer, history)


def general_direction(results: Sequence[NariResult], normalize: bool = False) -> dict[int, np.ndarray]:
    """Average successful Δ per layer over items and subjects (NARI gen.); optionally unit-normalised."""
    acc: dict[int, list] = {}
    for r in results:
        if r.solved.any():
            acc.setdefault(r.layer, []).append(r.deltas[r.solved])
    out = {}
    for layer, ds in acc.items():
        v = np.concatenate(ds).mean(0)
        out[layer] = v / max(np.linalg.norm(v), 1e-12) if normalize else v
    return out


def accuracy_with_offset(model, tokenizer, prompts: Sequence[str], labels, offsets: dict[int, np.ndarray] | None,
                         max_new_tokens: int = 1) -> dict:
    """Accuracy (invalid answers count as wrong) and invalid fraction with a shared offset per layer."""
    texts = greedy_answers(model, tokenizer, list(prompts), offsets, max_new_tokens=max_new_tokens)
    ans = [parse_answer(t) for t in texts]
    labels = np.asarray(labels, dtype=bool)
    correct = np.array([a is not None and a == y for a, y in zip(ans, labels)])
    return {"accuracy": float(correct.mean()), "invalid": float(np.mean([a is None for a in ans])),
            "correct": correct}


def scale_sweep(model, tokenizer, prompts: Sequence[str], labels, directions: dict[int, np.ndarray],
                scales: Sequence[float] = tuple(np.round(np.arange(0, 1.01, 0.1), 2))) -> dict:
    """Accuracy of ``scale × direction`` on a validation set for every scale; picks the best (ties → smallest)."""
    accs = []
    for s in scales:
        accs.append(accuracy_with_offset(model, tokenizer, prompts, labels,
                                         {k: s * v for k, v in directions.items()})["accuracy"])
    k = int(np.argmax(accs))
    return {"scales": np.asarray(scales, dtype=float), "accuracy": np.asarray(accs), "best_scale": float(scales[k])}


def middle_layers(n_layers: int) -> list[int]:
    """The authors' default intervened layers: ``range(L // 4, 3 * L // 4)``."""
    if n_layers < 1:
        raise ValueError(f"n_layers={n_layers}; give the number of decoder layers (>= 1).")
    return list(range(n_layers // 4, max(3 * n_layers // 4, n_layers // 4 + 1)))


def nari_study(model, tokenizer, prompts: Sequence[str], labels, attention, subjects_Y: Sequence[np.ndarray],
               subjects_correct: Sequence[np.ndarray], model_correct, layers: Sequence[int] | None = None,
               controls: Sequence[str] = (), seed: int = 0, task_labels=None, fit_consistent_questions: bool = False,
               **nari_kw):
    """NARI for every subject × layer (× reasoning type) (+ controls); one row per (subject, layer, task, condition).

    Parameters
    ----------
    attention : ndarray (n_items, n_layers, d)   last-token attention outputs
    subjects_Y, subjects_correct : per subject betas (n_items, n_voxels) and behaviour (n_items,) bool
    layers : default :func:`middle_layers`
    controls : subset of {"random_direction", "random_fmri", "random_fmri_mean"}
    task_labels : str (n_items,), optional
        Reasoning type of each item. Given, the encoder is fitted and NARI run per type (the authors' default:
        one encoder per subject, layer and type, intervening on that type's items); None pools all items
        (task ``"all"``).
    fit_consistent_questions : fit each encoder on the items the model and the subject both answer correctly
        (the authors' ``-fit_consistent_questions``; a type with fewer than 3 such items uses all its items)
    nari_kw : passed to :func:`nari` (loss, proj_alpha, max_steps, check_every, ...)

    Returns
    -------
    (DataFrame, list of NariResult): columns ``subject, layer, task, condition, n_items,
    flipped, flipped_fraction, intervened_accuracy``.
    """
    import pandas as pd

    from brainalign.steering.encoders import fit_item_encoder

    attention = np.asarray(attention)
    if attention.ndim != 3:
        raise ValueError(f"attention has shape {attention.shape}; give (n_items, n_layers, d).")
    bad = set(controls) - {"random_direction", "random_fmri", "random_fmri_mean"}
    if bad:
        raise ValueError(f"controls has unknown {sorted(bad)}; use random_direction, random_fmri, random_fmri_mean.")
    layers = middle_layers(attention.shape[1]) if layers is None else list(layers)
    mc = np.asarray(model_correct, dtype=bool)
    per_task = task_labels is not None
    tasks = np.asarray(task_labels, dtype=str) if per_task else np.full(mc.size, "all")
    if tasks.shape != mc.shape:
        raise ValueError(f"task_labels has shape {tasks.shape}; expected ({mc.size},), one type per item.")
    rows, results = [], []
    for s, (Y, sc) in enumerate(zip(subjects_Y, subjects_correct)):
        items = intervention_set(mc, sc)
        keep = (mc & np.asarray(sc, dtype=bool)) if fit_consistent_questions else None
        conds = [("fmri", np.asarray(Y), None)]
        if "random_direction" in controls:
            conds.append(("random_direction", np.asarray(Y), "random"))
        if "random_fmri" in controls:
            conds.append(("random_fmri", random_fmri(Y, seed + s), None))
        if "random_fmri_mean" in controls:
            conds.append(("random_fmri_mean", random_fmri(Y, seed + s, keep_mean=True), None))
        for layer in layers:
            X = attention[:, layer]
            for name, Yc, control in conds:
                enc = fit_item_encoder(X, Yc, tasks, per_task=per_task, keep=keep)
                for task in np.unique(tasks):
                    own = items[tasks[items] == task]
                    res = nari(model, tokenizer, prompts, labels, X, enc.by_task[task] if per_task else enc, Yc,
                               own, layer, control=control, seed=seed + s, **nari_kw)
                    results.append(res)
                    n_task = int((tasks == task).sum())
                    rows.append({"subject": s, "layer": layer, "task": str(task), "condition": name,
                                 "n_items": int(own.size), "flipped": int(res.solved.sum()),
                                 "flipped_fraction": res.flipped_fraction,
                                 "intervened_accuracy": float((mc[tasks == task].sum() + res.solved.sum()) / n_task)})
    return pd.DataFrame(rows), results
