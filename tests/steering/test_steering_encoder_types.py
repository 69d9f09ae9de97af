"""One encoder per reasoning type (the authors' NARI and NARF encoders), against pooling both types.

Planted: the two types' betas are different linear maps of the same model's last-token states, so one pooled
encoder must mix them; the per-type encoders recover each map, and NARF's brain loss routes each item through its
own type's encoder.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

pytest.importorskip("peft")

from steering_fixtures import root
from brainalign.analysis import pearson_r
from brainalign.steering import finetune
from brainalign.steering.encoders import TaskEncoders, fit_item_encoder
from brainalign.steering.hooks import last_token_states
from brainalign.steering.models import build_tiny_causal_lm, load_causal_lm
from brainalign.steering.tasks import generate_items, item_prompt

LAYER = 1


@functools.lru_cache(maxsize=None)
def _world():
    # initializer_range 0.3: last-token states of order 1 (as planted_finetune_study), so the seed's ridge
    # alphas (from 1e-3) barely shrink them
    path = build_tiny_causal_lm(root() / "qwen2-init0.3", "qwen2", hidden_size=32, num_layers=4, seed=0,
                                initializer_range=0.3)
    model, tok = load_causal_lm(path)
    items = generate_items("syllogism", 48, seed=3) + generate_items("transitive", 48, seed=3)
    prompts = [item_prompt(it, tok) for it in items]
    X = last_token_states(model, tok, prompts, kinds=("attention",))["attention"][:, LAYER].astype(np.float64)
    tasks = np.array([it.task for it in items])
    rng = np.random.default_rng(0)
    maps = {t: rng.standard_normal((X.shape[1], 20)) for t in ("syllogism", "transitive")}
    # each type's betas: its own map of the items' deviations from that type's mean state
    mean = {t: X[tasks == t].mean(0) for t in maps}
    Y = np.stack([(X[i] - mean[t]) @ maps[t] for i, t in enumerate(tasks)])
    return model, tok, items, prompts, X, tasks, Y


def _r_within_types(Y, P, tasks):
    """Median voxel r computed within each type's items, averaged over the types."""
    return float(np.mean([np.median(pearson_r(Y[tasks == t], P[tasks == t])) for t in np.unique(tasks)]))


def test_per_type_encoders_recover_each_type_map_that_one_pooled_encoder_mixes():
    _, _, _, _, X, tasks, Y = _world()
    test = np.zeros(len(tasks), bool)
    test[[*range(40, 48), *range(88, 96)]] = True  # 8 held-out items of each type
    per = fit_item_encoder(X[~test], Y[~test], tasks[~test], per_task=True)
    pooled = fit_item_encoder(X[~test], Y[~test], tasks[~test], per_task=False)
    assert isinstance(per, TaskEncoders) and set(per.by_task) == {"syllogism", "transitive"}
    tt = tasks[test]
    r_per = _r_within_types(Y[test], per.predict(X[test], tt), tt)
    r_pool = _r_within_types(Y[test], pooled.predict(X[test]), tt)
    r_swap = _r_within_types(Y[test], per.predict(X[test], tt[::-1]), tt)  # each item through the other type's map
    print(f"held-out median r: per type {r_per:.3f}, pooled {r_pool:.3f}, types swapped {r_swap:.3f}")
    assert r_per > 0.99 and r_pool < r_per - 0.1 and r_swap < 0.5
    # fit_consistent_questions: the rows left out do not touch the fit
    keep = np.arange(len(tasks)) % 3 != 0
    Yc = Y.copy()
    Yc[~keep] = 1e3
    a = fit_item_encoder(X, Yc, tasks, keep=keep).by_task["syllogism"]
    b = fit_item_encoder(X[keep], Y[keep], tasks[keep]).by_task["syllogism"]
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-9, atol=1e-12)


def test_the_brain_loss_routes_each_item_through_its_own_type_encoder():
    """lr = 0: the loss of the unchanged model. Per-type encoders fitted on all items predict every item's betas
    (loss ≈ 0); pooled ones, or the types' codes swapped, do not."""
    model, tok, _, prompts, X, tasks, Y = _world()

    def loss(enc, item_tasks):
        res = finetune.brain_finetune(model, tok, prompts, np.zeros(len(prompts), bool), layers=[LAYER],
                                      encoders=[{LAYER: enc}], subjects_Y=[Y], brain_weight=1.0, label_weight=0.0,
                                      lr=0.0, epochs=1, batch_size=len(prompts), adapter="full", item_tasks=item_tasks)
        return res.brain_loss[0]

    per, pooled = fit_item_encoder(X, Y, tasks, per_task=True), fit_item_encoder(X, Y, tasks, per_task=False)
    own, mixed = loss(per, tasks), loss(pooled, None)
    swapped = loss(per, np.where(tasks == "syllogism", "transitive", "syllogism"))
    print(f"brain loss: per type {own:.4f}, pooled {mixed:.4f}, types swapped {swapped:.4f}")
    assert own < 0.01 and mixed > 5 * own + 0.02 and swapped > 5 * own + 0.02
    with pytest.raises(ValueError, match="pass item_tasks"):
        loss(per, None)
