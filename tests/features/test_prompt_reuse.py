"""Reuse across prompts gives the naive features while running the encoder and prefix once."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.pooling import POOLINGS, GenerationConfig
from brainalign.features.reuse import shared_prefix_length

from vlm_fixtures import PROMPTS, arch, extractors, images  # noqa: F401 - pytest fixtures

# Prompts of very different lengths, and two that share words after the template prefix.
REUSE_PROMPTS = {
    **PROMPTS,
    "short": "Why?",
    "long": "What kind of interaction is happening between the animate and inanimate objects here? "
    "Which object is closest to the camera?",
    "caption2": "What is the caption of the picture?",
}


@pytest.mark.parametrize("pooling", sorted(POOLINGS))
def test_reuse_equals_naive(extractors, arch, images, pooling):
    ex = extractors[arch]
    ex.prompt_batch_size = 4  # 6 prompts -> two suffix batches (cache copied, then reused)
    gen = GenerationConfig(max_new_tokens=3)
    naive = ex.extract(images, REUSE_PROMPTS, "all", pooling=pooling, reuse=False, generation=gen)
    reuse = ex.extract(images, REUSE_PROMPTS, "all", pooling=pooling, reuse=True, generation=gen)
    for name in REUSE_PROMPTS:
        assert naive[name].values.shape == (2, 3, 64)
        diff = np.abs(naive[name].values - reuse[name].values).max()
        assert diff <= 1e-5, f"{arch} {pooling} {name}: max abs diff {diff:.2e}"
        assert reuse[name].meta["reuse"] is True and naive[name].meta["reuse"] is False
    if pooling == "generated":
        assert naive["long"].meta["generated_text"] == reuse["long"].meta["generated_text"]


def test_reuse_runs_the_image_encoder_once_per_stimulus(extractors, arch, images):
    ex = extractors[arch]
    tower = ex.model.model.visual if arch.startswith("qwen") else ex.model.model.vision_tower
    calls = []
    handle = tower.register_forward_hook(lambda *a: calls.append(1))
    try:
        ex.extract(images, REUSE_PROMPTS, [-1], reuse=True)
        n_reuse = len(calls)
        calls.clear()
        ex.extract(images, REUSE_PROMPTS, [-1], reuse=False)
        n_naive = len(calls)
    finally:
        handle.remove()
    # reuse: once per stimulus, or once per batch_size stimuli in families that batch (test_vlm_image_batches.py)
    assert n_reuse == (-(-len(images) // ex.batch_size) if ex.batch_keys else len(images))
    assert n_naive == len(images) * len(REUSE_PROMPTS)


def test_reuse_runs_the_shared_prefix_once(extractors, images):
    """Tokens through the language model: prefix once + suffixes, instead of every full sequence."""
    ex = extractors["qwen2_5_vl"]
    ex.prompt_batch_size = 16
    seen = []
    handle = ex.language_model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["inputs_embeds"].shape[:2]), with_kwargs=True
    )
    try:
        ex.extract(images[:1], REUSE_PROMPTS, [-1], reuse=True)
    finally:
        handle.remove()
    inputs = ex.process_image(images[0])
    seqs = [ex.tokenize(t, ex.n_stimulus_tokens(inputs)) for t in REUSE_PROMPTS.values()]
    p = shared_prefix_length([s.ids for s in seqs])
    assert seqs[0].masks.stimulus[:p].sum() == ex.n_stimulus_tokens(inputs)  # image inside the prefix
    longest = max(s.ids.numel() for s in seqs)
    assert seen == [(1, p), (len(REUSE_PROMPTS), longest - p)]


def test_shared_prefix_length():
    t = torch.tensor
    assert shared_prefix_length([t([1, 2, 3, 4]), t([1, 2, 5])]) == 2
    assert shared_prefix_length([t([1, 2, 3]), t([1, 2, 3, 4])]) == 2  # keep one suffix token each
    assert shared_prefix_length([t([1, 2, 3]), t([1, 2, 3])]) == 2
    assert shared_prefix_length([t([7, 2]), t([1, 2])]) == 0
    assert shared_prefix_length([t([1, 2, 3, 9])]) == 3


@pytest.mark.parametrize("pooling", ["last", "mean", "prompt"])
def test_reuse_equals_naive_attention_outputs(extractors, arch, images, pooling):
    ex = extractors[arch]
    ex.prompt_batch_size = 4
    naive = ex.extract(images, REUSE_PROMPTS, "all", pooling=pooling, reuse=False, component="attention")
    reuse = ex.extract(images, REUSE_PROMPTS, "all", pooling=pooling, reuse=True, component="attention")
    for name in REUSE_PROMPTS:
        assert naive[name].layers == [1, 2]
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5


def test_batched_sampling_equals_one_prompt_at_a_time(extractors, arch, images):
    ex = extractors[arch]
    ex.prompt_batch_size = 4
    gen = GenerationConfig(max_new_tokens=6, do_sample=True, top_k=50, temperature=1.3, seed=7)
    naive = ex.extract(images, REUSE_PROMPTS, [-1], pooling="generated", reuse=False, generation=gen)
    reuse = ex.extract(images, REUSE_PROMPTS, [-1], pooling="generated", reuse=True, generation=gen)
    texts = set()
    for name in REUSE_PROMPTS:
        assert naive[name].meta["generated_text"] == reuse[name].meta["generated_text"]
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5
        texts.update(naive[name].meta["generated_text"])
    assert len(texts) > 1  # sampling actually varies across prompts/images


def test_batched_decoding_stops_rows_at_eos(extractors, images):
    """Rows that end early (EOS) must not disturb the rows still decoding."""
    ex = extractors["llava"]
    ex.prompt_batch_size = 16
    greedy = GenerationConfig(max_new_tokens=8)
    first = ex.extract(images[:1], REUSE_PROMPTS, [-1], pooling="generated", reuse=False, generation=greedy)
    seq = ex.tokenize(REUSE_PROMPTS["long"], ex.n_stimulus_tokens(ex.process_image(images[0])))
    response = ex.generate_response(seq, ex.process_image(images[0]), greedy).ids[seq.ids.numel():]
    assert first["long"].meta["generated_text"][0] == ex.tokenizer.decode(response, skip_special_tokens=True)
    old = ex.model.generation_config.eos_token_id
    ex.model.generation_config.eos_token_id = int(response[2])  # make "long" stop after 3 tokens
    try:
        naive = ex.extract(images, REUSE_PROMPTS, "all", pooling="generated", reuse=False, generation=greedy)
        reuse = ex.extract(images, REUSE_PROMPTS, "all", pooling="generated", reuse=True, generation=greedy)
    finally:
        ex.model.generation_config.eos_token_id = old
    for name in REUSE_PROMPTS:
        assert naive[name].meta["generated_text"] == reuse[name].meta["generated_text"]
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5
    assert naive["long"].meta["generated_text"][0] == ex.tokenizer.decode(response[:3], skip_special_tokens=True)


def test_instruction_before_stimulus_falls_back_to_naive(extractors, images):
    """With the prompt before the image no prefix holds the image: reuse must still equal naive."""
    from brainalign.features.hf_vlm_families import LlavaExtractor

    base = extractors["llava"]
    text_first = (
        "{% for message in messages %}USER: {% for c in message['content'] %}{% if c['type'] == 'text' %}"
        "{{ c['text'] }}\n{% endif %}{% endfor %}{% for c in message['content'] %}{% if c['type'] == 'image' %}"
        "<image>{% endif %}{% endfor %} {% endfor %}ASSISTANT:"
    )
    ex = LlavaExtractor(base.model, base.tokenizer, base.image_processor, chat_template=text_first, model_id="tf")
    seq = ex.tokenize(PROMPTS["caption"], 16)
    assert seq.masks.prompt.nonzero()[0] < seq.masks.stimulus.nonzero()[0]  # prompt really comes first
    for pooling in ("mean", "last", "generated"):
        naive = ex.extract(images, PROMPTS, "all", pooling=pooling, reuse=False)
        reuse = ex.extract(images, PROMPTS, "all", pooling=pooling, reuse=True)
        for name in PROMPTS:
            assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5
