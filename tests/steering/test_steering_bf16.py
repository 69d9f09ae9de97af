"""Steering a bfloat16 model on the CPU: states come back float32, offsets take the model's dtype, generate runs.

The float32 model is the reference: bfloat16 states agree with it within bf16 rounding, and an offset moves the
bfloat16 model's answers as it moves the float32 model's (same offsets, cast by the hooks).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from steering_fixtures import tiny_lm_dir
from brainalign.steering import hooks, tasks
from brainalign.steering.models import load_causal_lm, untrained_copy

LAYER = 1


@pytest.fixture(scope="module")
def pair():
    path = tiny_lm_dir("qwen2")
    return load_causal_lm(path), load_causal_lm(path, dtype="bfloat16")


def _prompts(tok, n=4):
    return [tasks.item_prompt(i, tok) for i in tasks.generate_items("syllogism", n, seed=3)]


def test_bfloat16_states_are_float32_on_the_host_and_close_to_float32(pair):
    (m32, tok), (m16, _) = pair
    assert m16.dtype == torch.bfloat16 and m32.dtype == torch.float32
    prompts = _prompts(tok)
    a = hooks.last_token_states(m32, tok, prompts, return_logits=True)
    b = hooks.last_token_states(m16, tok, prompts, return_logits=True)
    for k in ("attention", "residual", "logits"):
        assert b[k].dtype == np.float32 and b[k].shape == a[k].shape
        rel = np.abs(a[k] - b[k]).max() / np.abs(a[k]).max()
        assert 0 < rel < 5e-2, (k, rel)


def test_offsets_steer_a_bfloat16_model_and_generate_runs(pair):
    (m32, tok), (m16, _) = pair
    prompts = _prompts(tok)
    d = m32.config.hidden_size
    rng = np.random.default_rng(0)
    base = hooks.last_token_states(m16, tok, prompts, kinds=("attention",))["attention"][:, LAYER]
    off = (rng.standard_normal(d) * 4 * np.abs(base).mean()).astype(np.float32)  # numpy float32 offset
    with torch.no_grad(), hooks.LayerHooks(m16, record=("attention",), offsets={LAYER: off}) as hk:
        m16(**tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False))
    shifted = hk.stacked("attention")[:, LAYER]
    assert shifted.dtype == torch.bfloat16
    # the hook added the offset in the model's dtype: the recorded state is the unshifted one plus it
    np.testing.assert_allclose(shifted.float().numpy() - base, np.broadcast_to(off, base.shape),
                               atol=0.05 * np.abs(off).max())
    texts16 = hooks.greedy_answers(m16, tok, prompts, {LAYER: off}, max_new_tokens=3)
    assert len(texts16) == len(prompts) and all(isinstance(t, str) for t in texts16)
    plain16 = hooks.greedy_answers(m16, tok, prompts, None, max_new_tokens=3)
    assert texts16 != plain16  # the offset changed what the bfloat16 model says


def test_untrained_control_keeps_the_models_dtype(pair):
    (_, tok), (m16, _) = pair
    fresh = untrained_copy(m16, seed=1)
    assert fresh.dtype == torch.bfloat16 and fresh.device == m16.device
    states = hooks.last_token_states(fresh, tok, _prompts(tok, 2), kinds=("residual",))["residual"]
    assert states.dtype == np.float32 and np.isfinite(states).all()


def test_loading_section_validates_dtype_device_and_finetune():
    from pydantic import ValidationError

    from brainalign.steering.config import SteerConfig

    planted = {"name": "p", "planted": {}}
    assert SteerConfig.model_validate(planted).loading.device == "cpu"
    with pytest.raises(ValidationError, match="loading.dtype"):
        SteerConfig.model_validate(dict(planted, loading={"dtype": "float64"}))
    with pytest.raises(ValidationError, match="loading.device"):
        SteerConfig.model_validate(dict(planted, loading={"device": "gpu"}))
    with pytest.raises(ValidationError, match="finetune runs on the CPU"):
        SteerConfig.model_validate(dict(planted, loading={"device": "auto"}, finetune={}))
