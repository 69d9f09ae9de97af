from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("peft")

from steering_fixtures import planted, tiny_lm
from brainalign.steering import encoders, evaluate, finetune, tasks
from brainalign.steering.hooks import last_token_states


def test_narf_label_trains_only_supervised_attention_and_lowers_both_losses(tmp_path):
    st = planted(2)
    L = st.layer
    X = st.attention[:, L]
    encs = [{L: encoders.fit_encoder(X, Y)} for Y in st.subjects_Y]
    model = copy.deepcopy(st.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = finetune.brain_finetune(model, st.tokenizer, st.prompts, st.labels, layers=[L], encoders=encs,
                                  subjects_Y=st.subjects_Y, brain_weight=1.0, lr=3e-3, epochs=4,
                                  grad_accumulate=8, seed=0, output_dir=tmp_path / "merged")
    print("train loss", np.round(res.train_loss, 3), "brain loss", np.round(res.brain_loss, 3))
    assert res.brain_loss[-1] < res.brain_loss[0] and res.train_loss[-1] < res.train_loss[0]
    after = res.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(f"layers.{L}.self_attn." in k and k.split(".")[-2] in ("q_proj", "k_proj", "v_proj", "o_proj")
                           for k in changed), changed
    # the merged adapter is saved as safetensors and reloads to the same outputs
    assert (tmp_path / "merged" / "model.safetensors").exists()
    from brainalign.steering.models import load_causal_lm

    again, tok = load_causal_lm(tmp_path / "merged")
    a = last_token_states(res.model, st.tokenizer, st.prompts[:4], return_logits=True)["logits"]
    b = last_token_states(again, tok, st.prompts[:4], return_logits=True)["logits"]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_label_only_baseline_is_narf_without_brain_term_and_best_epoch_is_kept():
    st = planted(3)
    L = st.layer
    X = st.attention[:, L]
    encs = [{L: encoders.fit_encoder(X, Y)} for Y in st.subjects_Y]
    val = [o for it in tasks.generate_items("transitive", 3, seed=50) for o in tasks.premise_orders(it)]
    vp = [tasks.item_prompt(o, st.tokenizer) for o in val]
    vl = [o.label for o in val]
    kw = dict(layers=[L], lr=3e-3, epochs=3, grad_accumulate=8, seed=1, val_prompts=vp, val_labels=vl)
    lab = finetune.brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, st.labels, brain_weight=0.0, **kw)
    zero = finetune.brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, st.labels, encoders=encs,
                                   subjects_Y=st.subjects_Y, brain_weight=0.0, **kw)
    np.testing.assert_allclose(lab.train_loss, zero.train_loss, rtol=1e-6)
    assert len(lab.val_accuracy) == 3 and lab.best_epoch == int(np.argmax(lab.val_accuracy))
    acc = evaluate.evaluate_items(lab.model, st.tokenizer, tasks.generate_items("transitive", 3, seed=50))
    assert acc["accuracy"] == pytest.approx(lab.val_accuracy[lab.best_epoch])


def test_ablation_inputs_and_validation():
    onehot = finetune.labels_as_fmri([True, False, True])
    np.testing.assert_array_equal(onehot, [[1, 0], [0, 1], [1, 0]])
    model, tok = tiny_lm("qwen2")
    with pytest.raises(ValueError, match="one encoder mapping"):
        finetune.brain_finetune(model, tok, ["a"], [True], layers=[1], brain_weight=0.1)
    with pytest.raises(ValueError, match="1 prompts but 2 labels"):
        finetune.brain_finetune(model, tok, ["a"], [True, False], layers=[1], brain_weight=0.0)


def test_evaluate_counts_every_premise_order():
    model, tok = tiny_lm("llama")
    items = tasks.generate_items("syllogism", 2, seed=0)
    res = evaluate.evaluate_items(model, tok, items)
    assert len(res["table"]) == 12 and set(res["by_task"]) == {"syllogism"}
    assert res["invalid"] == 1.0 and res["accuracy"] == 0.0  # a random model's first token is not True/False
    assert evaluate.intervened_accuracy([True, False, False, True], [1]) == 0.75
    with pytest.raises(ValueError, match="model got wrong"):
        evaluate.intervened_accuracy([True, False], [0])


def test_pure_narf_trains_all_of_the_supervised_attention_on_the_brain_loss_alone():
    """The NARF arm: full parameters (not a low-rank adapter) of the supervised layer's self-attention, nothing
    else; no label enters (flipping every label leaves the result unchanged bit for bit); the brain loss falls."""
    st = planted(2)
    L = st.layer
    encs = [{L: encoders.fit_encoder(st.attention[:, L], Y)} for Y in st.subjects_Y]
    before = {k: v.clone() for k, v in st.model.state_dict().items()}

    def narf(labels):
        return finetune.brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, labels, layers=[L],
                                       encoders=encs, subjects_Y=st.subjects_Y, brain_weight=1.0, label_weight=0.0,
                                       lr=1e-3, epochs=3, grad_accumulate=8, seed=0, adapter="full")

    res, flipped = narf(st.labels), narf(~st.labels)
    assert res.brain_loss[-1] < res.brain_loss[0]
    after = res.model.state_dict()
    assert set(after) == set(before)  # no adapter modules left behind
    attn = {k for k in before if f"layers.{L}.self_attn." in k}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == attn, changed ^ attn
    # full rank: the update of a projection is not confined to a rank-8 subspace as LoRA's would be
    k = next(k for k in attn if k.endswith("q_proj.weight"))
    assert np.linalg.matrix_rank((after[k] - before[k]).double().numpy(), tol=1e-7) > 8
    assert all(torch.equal(after[k], flipped.model.state_dict()[k]) for k in after)
    assert all(p.requires_grad for p in res.model.parameters())  # handed back trainable, like a merged LoRA model
    with pytest.raises(ValueError, match="adapter='qlora'"):
        finetune.brain_finetune(copy.deepcopy(st.model), st.tokenizer, st.prompts, st.labels, layers=[L],
                                brain_weight=0.0, adapter="qlora")
