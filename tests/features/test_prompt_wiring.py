"""Each prompt's features are that prompt's, all the way to the named feature space.

The demo's ``perceptual`` and ``action`` prompts have the same number of tokens, so nothing about their shapes
tells them apart: a swap anywhere between the features stage and the spaces stage would go unnoticed by shape or
token-count checks. Here every ``<model>/<prompt>/L<layer>`` space is compared with the TR-wise design times a
hand-written forward pass of the real MiniLM on exactly that prompt's texts (mean over the attention mask).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign import pipeline
from brainalign.config import load_config
from brainalign.features.store import FeatureStore

from test_config import DEMO


def _reference(path, texts):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hs = model(**enc, output_hidden_states=True).hidden_states
    m = enc["attention_mask"][:, :, None].float()
    return np.stack([((h * m).sum(1) / m.sum(1)).numpy() for h in hs], 1)  # (n_stimuli, n_layers, dim)


def test_every_prompt_space_holds_that_prompts_features(tmp_path):
    from brainalign.features.hf_text import builtin_model_path

    try:
        path, _ = builtin_model_path("minilm")
    except (ValueError, ImportError) as err:
        pytest.skip(f"MiniLM package not installed: {err}")
    exp = load_config(DEMO)
    data = pipeline.load_data(exp, DEMO.parent)
    feats, meta = pipeline.model_features(exp, data, FeatureStore(tmp_path))
    tokens = meta["MiniLM-L6"]["n_tokens"]
    assert tokens["perceptual"] == tokens["action"]  # the swap this test is about is invisible to token counts

    spaces = {sp.name: sp for sp in pipeline.build_feature_spaces(data, feats, meta, exp.models)}
    for prompt, template in exp.prompts.items():
        ref = _reference(path, [template.format(stimulus=n) for n in data.names])
        np.testing.assert_allclose(feats["MiniLM-L6"][prompt], ref, atol=2e-4)
        for layer in (0, 3, 6):
            X = spaces[f"MiniLM-L6/{prompt}/L{layer}"].X
            np.testing.assert_allclose(X, data.design @ ref[:, layer], atol=2e-4)
    # and the two prompts' features do differ, so a swap would fail the comparison above
    assert not np.allclose(feats["MiniLM-L6"]["perceptual"], feats["MiniLM-L6"]["action"], atol=1e-2)
