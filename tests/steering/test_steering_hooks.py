from __future__ import annotations

import numpy as np
import pytest
import torch

from steering_fixtures import tiny_lm
from brainalign.steering import hooks, tasks

ARCHS = ["qwen2", "llama", "gemma", "gemma2"]


def _prompts(tok, n=4):
    items = tasks.generate_items("syllogism", n // 2, seed=0) + tasks.generate_items("transitive", n - n // 2, seed=0)
    return [tasks.item_prompt(i, tok) for i in items]


@pytest.mark.parametrize("arch", ARCHS)
def test_residual_records_match_hidden_states_and_padding_is_irrelevant(arch):
    model, tok = tiny_lm(arch)
    prompts = _prompts(tok)
    batched = hooks.last_token_states(model, tok, prompts, batch_size=4)
    single = hooks.last_token_states(model, tok, prompts, batch_size=1)  # no padding at all
    for k in ("attention", "residual"):
        assert batched[k].shape == (4, 4, 32)
        np.testing.assert_allclose(batched[k], single[k], atol=2e-5)
    enc = tok(prompts[:1], return_tensors="pt")
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    for layer in range(3):  # the last entry of hidden_states is after the final norm
        np.testing.assert_allclose(single["residual"][0, layer], hs[layer + 1][0, -1].numpy(), atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_offsets_shift_the_attention_output_and_leave_no_hooks(arch):
    model, tok = tiny_lm(arch)
    prompts = _prompts(tok, 2)
    enc = tok(prompts, return_tensors="pt", padding=True)
    delta = torch.randn(2, 32)
    with torch.no_grad(), hooks.no_hooks_left(model):
        with hooks.LayerHooks(model) as plain:
            base = model(**enc).logits
        with hooks.LayerHooks(model, offsets={1: torch.zeros(32)}):
            zero = model(**enc).logits
        with hooks.LayerHooks(model, offsets={1: delta}) as shifted:
            moved = model(**enc).logits
    torch.testing.assert_close(zero, base)
    torch.testing.assert_close(shifted.records["attention"][1], plain.records["attention"][1] + delta)
    torch.testing.assert_close(shifted.records["attention"][0], plain.records["attention"][0])  # earlier layer untouched
    assert not torch.allclose(moved[:, -1], base[:, -1])
    real = enc["attention_mask"][:, :-1].bool()  # padded query rows may attend anywhere
    torch.testing.assert_close(moved[:, :-1][real], base[:, :-1][real])  # only the last token is shifted


def test_offsets_are_added_once_during_generate():
    model, tok = tiny_lm("qwen2")
    prompts = _prompts(tok, 2)
    with hooks.no_hooks_left(model):
        plain = hooks.greedy_answers(model, tok, prompts, max_new_tokens=3)
        one = hooks.greedy_answers(model, tok, prompts, max_new_tokens=1)
    assert [p[: len(o)] for p, o in zip(plain, one)] == one


def test_bad_offset_layer_and_kind_are_rejected():
    model, _ = tiny_lm("llama")
    with pytest.raises(ValueError, match="offset layer 7"):
        hooks.LayerHooks(model, offsets={7: np.zeros(32)})
    with pytest.raises(ValueError, match="unknown"):
        hooks.LayerHooks(model, record=("mlp",))


def test_hooks_on_real_minilm_encoder_layers():
    from transformers import AutoModel, AutoTokenizer

    from brainalign.features.hf_text import builtin_model_path

    try:
        path, _ = builtin_model_path("minilm")
    except (ValueError, ImportError) as err:
        pytest.skip(f"MiniLM package not installed: {err}")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
    texts = ["All blick are dax.", "Rilo is taller than Mab, and Mab is taller than Tesk."]
    enc = tok(texts, return_tensors="pt", padding=True)  # right padding: last token differs per row
    with torch.no_grad(), hooks.LayerHooks(model) as hk:
        hs = model(**enc, output_hidden_states=True).hidden_states
    last = enc["attention_mask"].sum(1) - 1
    assert last[0] < last[1]
    res = hk.stacked("residual")
    assert res.shape == (2, model.config.num_hidden_layers, model.config.hidden_size)
    for layer in range(model.config.num_hidden_layers):
        torch.testing.assert_close(res[:, layer], hs[layer + 1][torch.arange(2), last])
    # offset on the attention block moves that row's later states but not the other positions
    off = torch.zeros(2, model.config.hidden_size)
    off[0, :] = 1.0
    with torch.no_grad(), hooks.LayerHooks(model, offsets={2: off}) as hk2:
        model(**enc)
    torch.testing.assert_close(hk2.records["attention"][2][1], hk.records["attention"][2][1])
    assert not torch.allclose(hk2.records["residual"][2][0], hk.records["residual"][2][0])
