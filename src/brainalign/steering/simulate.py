"""The planted setting: a tiny causal LM whose answer is decided by a hidden direction, and simulated subjects.

- The tiny model (random init, seeded) gets an output head on which only
  'True' and 'False' can win: their rows are ``±g·u`` for a random unit ``u``
  and every other row is shrunk, so logit(True) − logit(False) = 2g⟨h, u⟩ for
  the final normed hidden state h. Its answers are always valid, and which one
  it gives is decided by the last-token state.
- The hidden direction ``d`` at the planted layer ℓ is the mean gradient of that
  logit difference with respect to the last-token attention output of ℓ
  (unit norm): moving along +d pushes towards 'True'.
- Subject s's betas are a planted linear map of the *correct-side* state:
  ``y_i = M_s (x_i − x̄ + κ σ s_i d) + ε``, with ``s_i = +1`` for a valid item and
  −1 otherwise, σ² = mean ‖xᵢ − x̄‖² and ``M_s`` a random voxel map;
  the subject answers correctly with probability ``subject_accuracy``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainalign.steering import tasks
from brainalign.steering.hooks import LayerHooks, last_token_states
from brainalign.steering.models import answer_token_ids, build_tiny_causal_lm, load_causal_lm

__all__ = ["PlantedStudy", "make_planted_model", "answer_direction", "planted_subjects", "planted_study"]


@dataclass
class PlantedStudy:
    model: object
    tokenizer: object
    items: list
    prompts: list
    labels: np.ndarray
    task_labels: np.ndarray
    layer: int
    direction: np.ndarray
    attention: np.ndarray        # (n_items, n_layers, d)
    residual: np.ndarray         # (n_items, n_layers, d)
    model_correct: np.ndarray    # (n_items,)
    subjects_Y: list             # per subject (n_items, n_voxels)
    subjects_correct: list       # per subject (n_items,) bool
    kappa: float = 0.0


def make_planted_model(folder: str | Path, prompts_of, seed: int = 0, arch: str = "qwen2", hidden_size: int = 32,
                       num_layers: int = 4, margin: float = 4.0, initializer_range: float = 0.02,
                       layer: int | None = None):
    """Build, load and re-head a tiny causal LM so that it answers 'True' or 'False', about half each.

    ``prompts_of(tokenizer)`` gives the prompts that calibrate the head: ``u``
    is the top principal axis of their final hidden states (or, with ``layer``,
    of the last-token attention outputs of that layer), made orthogonal to
    their mean (so the answer splits the items), scaled so that the logit
    difference has standard deviation ``margin``.
    """
    import torch

    path = build_tiny_causal_lm(folder, arch, hidden_size=hidden_size, num_layers=num_layers, seed=seed,
                                initializer_range=initializer_range)
    model, tok = load_causal_lm(path)
    t, f = answer_token_ids(tok)
    prompts = list(prompts_of(tok))
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        H = model(**enc, output_hidden_states=True).hidden_states[-1][:, -1].double().numpy()
    mu = H.mean(0)
    if layer is None:
        _, _, vt = np.linalg.svd(H - mu, full_matrices=False)
    else:  # read out the main axis of the layer's attention outputs, carried to the top by the residual stream
        X = last_token_states(model, tok, prompts, kinds=("attention",))["attention"][:, layer].astype(np.float64)
        _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    u = vt[0] - (vt[0] @ mu) / (mu @ mu) * mu
    g = margin / (2 * max((H @ u).std(), 1e-12))
    with torch.no_grad():
        w = model.get_output_embeddings().weight
        w.mul_(0.01)
        w[t] = torch.as_tensor(g * u, dtype=w.dtype)
        w[f] = torch.as_tensor(-g * u, dtype=w.dtype)
    return model, tok


def answer_direction(model, tokenizer, prompts, layer: int, X=None, n_components: int = 6) -> np.ndarray:
    """Unit mean gradient of logit(True) − logit(False) w.r.t. the last-token attention output of ``layer``.

    With ``X`` (n_items, d), the gradient is first projected onto the top
    ``n_components`` principal axes of X, so the direction is one along which
    the items actually vary (a linear encoder can only see those).
    """
    import torch

    t, f = answer_token_ids(tokenizer)
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
    d = model.config.hidden_size
    off = torch.zeros(d, requires_grad=True)
    with LayerHooks(model, record=(), offsets={layer: off}) as hk:
        logits = model(**enc).logits
        last = logits[torch.arange(logits.shape[0]), hk._last]
        (last[:, t] - last[:, f]).sum().backward()
    v = off.grad.numpy().astype(np.float64)
    if X is not None:
        X = np.asarray(X, dtype=np.float64)
        _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
        v = vt[:n_components].T @ (vt[:n_components] @ v)
    return v / np.linalg.norm(v)


def planted_subjects(X, labels, direction, n_subjects: int = 3, n_voxels: int = 80, kappa: float = 2.0,
                     noise: float = 0.3, subject_accuracy: float = 0.9, seed: int = 0,
                     n_components: int | None = 6) -> tuple[list, list]:
    """Betas ``y = M_s (x + κ σ s d) + ε`` and per-item correctness of each simulated subject."""
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(seed)
    s = np.where(np.asarray(labels, dtype=bool), 1.0, -1.0)
    Xc = X - X.mean(0)
    sigma = np.sqrt((Xc ** 2).sum(1).mean())
    if n_components is not None:  # the brain reads the items' main axes only
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        Xc = Xc @ vt[:n_components].T @ vt[:n_components]
    target = Xc + kappa * sigma * s[:, None] * direction[None]  # betas: item deviations from baseline
    Ys, correct = [], []
    for _ in range(n_subjects):
        M = rng.standard_normal((X.shape[1], n_voxels)) / np.sqrt(X.shape[1])
        clean = target @ M
        Ys.append((clean + noise * (clean - clean.mean(0)).std() * rng.standard_normal(clean.shape)).astype(np.float32))
        correct.append(rng.random(X.shape[0]) < subject_accuracy)
    return Ys, correct


def planted_study(folder: str | Path, seed: int = 0, n_items: int = 48, layer: int | None = None,
                  arch: str = "qwen2", hidden_size: int = 32, num_layers: int = 4, n_subjects: int = 3,
                  n_voxels: int = 80, kappa: float | str = "auto", noise: float = 0.3) -> PlantedStudy:
    """Everything NARI / NARF need in the planted setting: model, items (half syllogisms), reps, subjects.

    ``kappa="auto"``: the smallest of 1, 2, 4, 8, 16, 32 at which the planted
    correct-side states ``x + κ σ s d`` (added to the model) make it answer at
    least 90 % of the items correctly, so that the subjects' states do decide
    the answer.
    """
    from brainalign.steering.hooks import greedy_answers

    half = n_items // 2
    items = tasks.generate_items("syllogism", half, seed) + tasks.generate_items("transitive", n_items - half, seed)
    layer = num_layers // 2 if layer is None else layer
    model, tok = make_planted_model(folder, lambda tk: [tasks.item_prompt(i, tk) for i in items], seed, arch,
                                    hidden_size, num_layers, layer=layer)
    prompts = [tasks.item_prompt(i, tok) for i in items]
    labels = np.array([i.label for i in items])
    reps = last_token_states(model, tok, prompts)
    answers = [tasks.parse_answer(t) for t in greedy_answers(model, tok, prompts)]
    model_correct = np.array([a is not None and a == y for a, y in zip(answers, labels)])
    direction = answer_direction(model, tok, prompts, layer, reps["attention"][:, layer])
    if kappa == "auto":
        X = reps["attention"][:, layer]
        sigma = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())
        sign = np.where(labels, 1.0, -1.0)[:, None]
        for kappa in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
            shifted = greedy_answers(model, tok, prompts, {layer: kappa * sigma * sign * direction[None]})
            if np.mean([tasks.parse_answer(t) == y for t, y in zip(shifted, labels)]) >= 0.9:
                break
    Ys, correct = planted_subjects(reps["attention"][:, layer], labels, direction, n_subjects, n_voxels, kappa,
                                   noise, seed=seed + 100)
    return PlantedStudy(model, tok, items, prompts, labels, np.array([i.task for i in items]), layer, direction,
                        reps["attention"], reps["residual"], model_correct, Ys, correct, float(kappa))
