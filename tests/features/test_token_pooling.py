"""pool_tokens against a numpy reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.pooling import POOLINGS, TokenMasks, pool_tokens


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 10, 5)).astype(np.float32)
    stim = np.zeros(10, bool)
    stim[2:5] = True
    prompt = np.zeros(10, bool)
    prompt[5:7] = True
    gen = np.zeros(10, bool)
    gen[8:] = True
    masks = TokenMasks(torch.from_numpy(stim), torch.from_numpy(prompt), torch.from_numpy(gen))
    return hidden, stim, prompt, gen, masks


def test_each_pooling_matches_numpy(case):
    hidden, stim, prompt, gen, masks = case
    ref = {
        "mean": hidden[:, :8].mean(1),  # input tokens only: generated ones are excluded
        "stimulus": hidden[:, stim].mean(1),
        "prompt": hidden[:, prompt].mean(1),
        "last": hidden[:, 7],  # last input token, not last generated one
        "generated": hidden[:, gen].mean(1),
    }
    assert set(ref) == set(POOLINGS)
    for name, expected in ref.items():
        got = pool_tokens(torch.from_numpy(hidden), masks, name)
        assert got.shape == (3, 5) and got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-6, err_msg=name)


def test_without_generation(case):
    hidden, stim, prompt, _, _ = case
    masks = TokenMasks(torch.from_numpy(stim), torch.from_numpy(prompt))
    np.testing.assert_allclose(pool_tokens(torch.from_numpy(hidden), masks, "mean").numpy(), hidden.mean(1), atol=1e-6)
    np.testing.assert_allclose(pool_tokens(torch.from_numpy(hidden), masks, "last").numpy(), hidden[:, -1])
    with pytest.raises(ValueError, match=r"needs generated tokens"):
        pool_tokens(torch.from_numpy(hidden), masks, "generated")


def test_empty_selection_and_bad_name(case):
    hidden, stim, _, _, _ = case
    masks = TokenMasks(torch.from_numpy(stim), torch.zeros(10, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"pooling='prompt' selects no token"):
        pool_tokens(torch.from_numpy(hidden), masks, "prompt")
    with pytest.raises(ValueError, match=r"pooling='cls' is not supported.*'generated'"):
        pool_tokens(torch.from_numpy(hidden), masks, "cls")
