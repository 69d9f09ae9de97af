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

Brain-guided fine-tuning has its own planted world (:func:`planted_finetune_study`,
:func:`compare_finetuning`, :func:`brain_push`): truth = a hidden readout of the
model's layer state, few labelled items (8), betas for many (96). There
NARF+Label beats label-only on held-out generated problems (10 of 10 held-out
worlds, mean margin about +0.10; ``tests/steering/test_steering_narf_planted.py``
asserts it on 5 worlds, ``benchmarks/bench_narf_planted.py`` measures it with a
random-fMRI arm and under every premise order). With 48 fMRI items and brain
weight 10 it did not (mean margin +0.001 over 5 worlds): see docs/steering.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainalign.steering import tasks
from brainalign.steering.hooks import LayerHooks, last_token_states
from brainalign.steering.models import answer_token_ids, build_tiny_causal_lm, load_causal_lm

__all__ = ["PlantedStudy", "make_planted_model", "answer_direction", "planted_subjects", "planted_study",
           "PlantedFinetune", "planted_finetune_study", "compare_finetuning", "brain_push"]


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
        last = logits[torch.arange(logits.shape[0]), hk.last_positions]
        (last[:, t] - last[:, f]).sum().backward()
    v = off.grad.numpy().astype(np.float64)
    if X is not None:
        X = np.asarray(X, dtype=np.float64)
        _, _, vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
        v = vt[:n_components].T @ (vt[:n_components] @ v)
    return v / np.linalg.norm(v)


def planted_subjects(X, labels, direction, n_subjects: int = 3, n_voxels: int = 80, kappa: float = 2.0,
                     noise: float = 0.3, subject_accuracy: float = 0.9, seed: int = 0,
                     n_components: int | None = 6, evidence=None) -> tuple[list, list]:
    """Betas ``y = M_s (x + κ σ s d) + ε`` and per-item correctness of each simulated subject.

    ``s_i = ±1`` from the labels, or (``evidence``, shape (n_items,)) a graded
    signed evidence for the correct answer in place of the sign.
    """
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(seed)
    s = np.where(np.asarray(labels, dtype=bool), 1.0, -1.0) if evidence is None else np.asarray(evidence, float)
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


# ---------------------------------------------------------------------------------------------------------------
# Planted setting for brain-guided fine-tuning (NARF+Label vs label-only)
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class PlantedFinetune:
    """A planted world in which fMRI betas carry answer information that a few labels under-determine.

    - Ground truth of every problem (fMRI items, validation and test problems,
      all generated with disjoint seeds) is a hidden linear readout of the
      model's own last-token attention output at ``layer``:
      ``t = ⟨x − x̄, v⟩ > median`` (x̄ and the median over the fMRI items), with
      ``v`` a main axis of the items orthogonal to the answer direction ``d``;
      the model's answer does not follow it (about chance), but LoRA on the
      layer's attention can learn it (a rank-1 map from v to d).
    - Only ``label_mask`` (a few fMRI items) carry labels for the CE loss; all
      fMRI items carry betas ``y = M_s (x − x̄ + κ σ s d) + ε`` of simulated
      subjects (:func:`planted_subjects`), so the brain loss supervises many
      more items than the labels do.
    - Encoders are fitted as the authors' ``-fit_consistent_questions``: on the
      items where the model and the subject both answer correctly.
    """
    model: object
    tokenizer: object
    layer: int
    direction: np.ndarray
    readout: np.ndarray
    prompts: list                 # fMRI items
    labels: np.ndarray            # planted truth of the fMRI items
    label_mask: np.ndarray        # items whose label enters the CE loss
    val_prompts: list
    val_labels: np.ndarray
    test_prompts: list
    test_labels: np.ndarray
    subjects_Y: list
    subjects_correct: list
    encoders: list                # per subject {layer: LinearEncoder}
    model_correct: np.ndarray
    kappa: float


def _generated(seed: int, n: int) -> list:
    return tasks.generate_items("syllogism", n // 2, seed) + tasks.generate_items("transitive", n - n // 2, seed)


def planted_finetune_study(folder: str | Path, seed: int = 0, n_fmri: int = 96, n_labelled: int = 8,
                           n_val: int = 40, n_test: int = 60, arch: str = "qwen2", hidden_size: int = 32,
                           num_layers: int = 4, layer: int | None = None, initializer_range: float = 0.3,
                           n_subjects: int = 3, n_voxels: int = 80, kappas=(4.0, 8.0, 16.0),
                           noise: float = 0.3, brain_code: str = "answer", all_orders: bool = False) -> PlantedFinetune:
    """Build the planted fine-tuning world of :class:`PlantedFinetune` (fMRI, validation and test problems).

    ``initializer_range=0.3`` gives last-token activations of order 1 (a trained
    model's scale; 0.02 gives ~0.003, on which LoRA learning rates are touchy).
    κ is the smallest of ``kappas`` at which the correct-side states make the
    model answer ≥ 90 % of the fMRI items correctly.

    ``all_orders``: validation and test prompts under every premise order
    (n_val × 6, n_test × 6; the truth of each is the planted readout of
    that prompt).

    ``brain_code="answer"``: the betas carry the correct side ``s = ±1`` along
    ``d``; ``"evidence"``: a graded signed evidence (the hidden readout minus
    its threshold, scaled to mean |·| = 1) in place of the sign (explored on
    2026-11-23: no reliable gain either, see docs/steering.md).
    """
    from brainalign.steering.directions import accuracy_with_offset

    if not 0 < n_labelled <= n_fmri:
        raise ValueError(f"n_labelled={n_labelled}; use 1..n_fmri={n_fmri}.")
    layer = num_layers // 2 if layer is None else layer
    fmri, val, test = _generated(seed, n_fmri), _generated(seed + 2000, n_val), _generated(seed + 1000, n_test)
    if all_orders:  # the authors' protocol: validate (best epoch) and test over every premise order
        val = [o for it in val for o in tasks.premise_orders(it)]
        test = [o for it in test for o in tasks.premise_orders(it)]
    model, tok = make_planted_model(folder, lambda tk: [tasks.item_prompt(i, tk) for i in fmri], seed, arch,
                                    hidden_size, num_layers, layer=layer, initializer_range=initializer_range)
    prompts = [[tasks.item_prompt(i, tok) for i in s] for s in (fmri, val, test)]
    X = [last_token_states(model, tok, p, kinds=("attention",))["attention"][:, layer].astype(np.float64)
         for p in prompts]
    d = answer_direction(model, tok, prompts[0], layer, X[0])
    mu = X[0].mean(0)
    _, _, vt = np.linalg.svd(X[0] - mu, full_matrices=False)
    v = vt[1] - (vt[1] @ d) * d
    v /= np.linalg.norm(v)
    thr = np.median((X[0] - mu) @ v)
    truth = [((x - mu) @ v) > thr for x in X]
    sigma = np.sqrt(((X[0] - mu) ** 2).sum(1).mean())
    sign = np.where(truth[0], 1.0, -1.0)[:, None]
    for kappa in kappas:
        off = (kappa * sigma * sign * d[None]).astype(np.float32)
        if accuracy_with_offset(model, tok, prompts[0], truth[0], {layer: off})["accuracy"] >= 0.9:
            break
    if brain_code not in ("answer", "evidence"):
        raise ValueError(f"brain_code={brain_code!r}; use 'answer' or 'evidence'.")
    ev = None
    if brain_code == "evidence":
        z = (X[0] - mu) @ v - thr
        ev = z / np.abs(z).mean()
    Ys, correct = planted_subjects(X[0], truth[0], d, n_subjects, n_voxels, kappa, noise, seed=seed + 100,
                                   n_components=None, evidence=ev)
    model_correct = np.asarray(accuracy_with_offset(model, tok, prompts[0], truth[0], None)["correct"], dtype=bool)
    encs = _consistent_encoders(X[0], Ys, model_correct, correct, layer)
    mask = np.zeros(n_fmri, dtype=bool)
    mask[np.random.default_rng(seed).choice(n_fmri, n_labelled, replace=False)] = True
    return PlantedFinetune(model, tok, layer, d, v, prompts[0], truth[0], mask, prompts[1], truth[1], prompts[2],
                           truth[2], Ys, correct, encs, model_correct, float(kappa))


def _consistent_encoders(X, Ys, model_correct, subjects_correct, layer: int) -> list:
    """Per subject {layer: encoder} fitted on the items both the model and the subject answer correctly."""
    from brainalign.steering.encoders import fit_encoder

    X = np.asarray(X, dtype=np.float32)
    keeps = [np.asarray(model_correct, bool) & np.asarray(c, bool) for c in subjects_correct]
    return [{layer: fit_encoder(X[k], np.asarray(Y)[k])} for Y, k in zip(Ys, keeps)]


def compare_finetuning(study: PlantedFinetune, brain_weight: float = 1.0, lr: float = 1e-2, epochs: int = 20,
                       grad_accumulate: int = 16, seed: int = 0, random_fmri: bool = False, narf: bool = False,
                       narf_lr: float = 1e-3, batch_size: int = 8) -> dict:
    """NARF+Label vs the label-only baseline on one planted world: identical settings but ``brain_weight``.

    Both runs see the same items, labels, seed, epochs, optimiser and
    validation set (best epoch by validation accuracy); accuracy is then
    measured once on the held-out test problems. ``brain_weight=1`` and
    ``planted_finetune_study``'s 96 fMRI items were chosen on exploration
    worlds 20-25 and confirmed on held-out worlds 0-9 (docs/steering.md).

    ``random_fmri``: a third arm, NARF+Label on Gaussian "betas" with each
    voxel's std (``directions.random_fmri``, encoders refitted on them the
    same way): the brain term without the brain's content.

    ``narf``: a fourth arm, pure NARF: the brain loss alone (no label), every
    self-attention parameter of the supervised layer trained (no LoRA), at
    ``narf_lr``; the same items, epochs, validation and seed.

    Returns
    -------
    dict with ``label_only`` and ``narf_label`` (and ``random_fmri``, ``narf``) test
    accuracies, ``margin`` (NARF+Label − label-only), ``base`` (before
    fine-tuning) and each arm's :class:`~brainalign.steering.finetune.FinetuneResult`
    under ``<arm>_result``.
    """
    import copy

    from brainalign.steering.directions import accuracy_with_offset
    from brainalign.steering.directions import random_fmri as gaussian_betas
    from brainalign.steering.finetune import brain_finetune

    out = {"base": accuracy_with_offset(study.model, study.tokenizer, study.test_prompts, study.test_labels,
                                        None)["accuracy"]}
    # (arm, brain weight, encoders, betas, label weight, lr, adapter)
    arms = [("label_only", 0.0, study.encoders, study.subjects_Y, 1.0, lr, "lora"),
            ("narf_label", brain_weight, study.encoders, study.subjects_Y, 1.0, lr, "lora")]
    if random_fmri:
        Yr = [gaussian_betas(Y, seed + s).astype(np.float32) for s, Y in enumerate(study.subjects_Y)]
        X = last_token_states(study.model, study.tokenizer, study.prompts, kinds=("attention",))["attention"]
        arms.append(("random_fmri", brain_weight,
                     _consistent_encoders(X[:, study.layer], Yr, study.model_correct, study.subjects_correct,
                                          study.layer), Yr, 1.0, lr, "lora"))
    if narf:
        arms.append(("narf", brain_weight, study.encoders, study.subjects_Y, 0.0, narf_lr, "full"))
    for name, w, encs, Ys, lw, arm_lr, adapter in arms:
        res = brain_finetune(copy.deepcopy(study.model), study.tokenizer, study.prompts, study.labels,
                             layers=[study.layer], encoders=encs, subjects_Y=Ys,
                             brain_weight=w, label_weight=lw, lr=arm_lr, epochs=epochs,
                             grad_accumulate=grad_accumulate, batch_size=batch_size, seed=seed,
                             label_mask=study.label_mask,
                             val_prompts=study.val_prompts, val_labels=study.val_labels, adapter=adapter)
        out[name] = accuracy_with_offset(res.model, study.tokenizer, study.test_prompts, study.test_labels,
                                         None)["accuracy"]
        out[f"{name}_result"] = res
    out["margin"] = out["narf_label"] - out["label_only"]
    return out


def brain_push(study: PlantedFinetune) -> dict:
    """How the brain loss pushes each fMRI item along the answer direction, before any fine-tuning.

    For every item and subject, the gradient g of ``1 − cos(a W + b, y)`` with
    respect to the item's attention output ``a`` at the supervised layer; the
    push is ``−⟨g, d⟩`` (positive: towards 'True'), averaged over subjects.
    The brain term can only teach the answer where this push has the sign of
    the planted truth on items the model gets wrong; an encoder that already
    reads the brain's answer code from the model's own states (a code linear
    in those states) leaves no such push.

    Returns
    -------
    dict with ``push`` (n_items,), ``agreement_wrong`` (fraction of the items
    the model gets wrong whose push has the truth's sign) and
    ``agreement_all``.
    """
    import torch

    X = last_token_states(study.model, study.tokenizer, study.prompts, kinds=("attention",))["attention"][:, study.layer]
    a = torch.as_tensor(X, dtype=torch.float32).requires_grad_(True)
    total = torch.zeros(())
    for enc, Y in zip(study.encoders, study.subjects_Y):
        e = enc[study.layer]
        pred = a @ torch.as_tensor(e.coef, dtype=torch.float32) + torch.as_tensor(e.intercept, dtype=torch.float32)
        total = total + (1 - torch.nn.functional.cosine_similarity(pred, torch.as_tensor(Y), dim=1)).sum()
    total.backward()
    push = -(a.grad.numpy().astype(np.float64) @ study.direction) / len(study.encoders)
    sign = np.where(study.labels, 1.0, -1.0)
    agree = np.sign(push) == sign
    wrong = ~study.model_correct
    return {"push": push, "agreement_wrong": float(agree[wrong].mean()) if wrong.any() else float("nan"),
            "agreement_all": float(agree.mean())}
