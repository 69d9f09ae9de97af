"""InstructBLIP: instruction-aware Q-Former, vision once per image, reuse == naive."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.pooling import GenerationConfig
from brainalign.features.registry import load_extractor
from brainalign.features.tiny.models import build_tiny_instructblip

from vlm_fixtures import PROMPTS, images  # noqa: F401 - pytest fixtures


@pytest.fixture(scope="module")
def iblip(tmp_path_factory):
    path = build_tiny_instructblip(tmp_path_factory.mktemp("tiny_instructblip"))
    return load_extractor(path, device="cpu")


def test_inputs_match_the_real_processor(iblip, images):
    from transformers import AutoProcessor

    assert iblip.meta["processor"] == "AutoProcessor"
    proc = AutoProcessor.from_pretrained(iblip.meta["source"], local_files_only=True)
    for text in PROMPTS.values():
        enc = proc(images=images[0], text=text, return_tensors="pt")
        ids, masks, qids = iblip.tokenize(text)
        assert torch.equal(enc["input_ids"][0], ids) and torch.equal(enc["qformer_input_ids"][0], qids)
        assert int(masks.stimulus.sum()) == iblip.num_query_tokens and bool(masks.stimulus[: iblip.num_query_tokens].all())
        assert iblip.tokenizer.decode(ids[masks.prompt]).strip() == text
    # features equal a plain forward on the processor's output
    enc = proc(images=images[1], text=PROMPTS["people"], return_tensors="pt")
    with torch.inference_mode():
        ref = iblip.model(**enc, output_hidden_states=True).language_model_outputs.hidden_states
    got = iblip.extract(images[1:], {"p": PROMPTS["people"]}, "all", pooling="last", reuse=False)["p"].values[0]
    np.testing.assert_allclose(got, torch.stack(ref)[:, 0, -1].numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "component, pooling",
    [("language", "mean"), ("language", "stimulus"), ("language", "prompt"), ("language", "last"),
     ("attention", "last"), ("qformer", "mean"), ("qformer", "stimulus"), ("vision", "mean")],
)
def test_reuse_equals_naive(iblip, images, component, pooling):
    iblip.prompt_batch_size = 2
    naive = iblip.extract(images, PROMPTS, "all", pooling=pooling, reuse=False, component=component)
    reuse = iblip.extract(images, PROMPTS, "all", pooling=pooling, reuse=True, component=component)
    for name in PROMPTS:
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5
    differs = np.abs(naive["caption"].values - naive["people"].values).max() > 1e-4
    # only the vision encoder ignores the instruction
    assert differs == (component != "vision")


def test_vision_encoder_runs_once_per_image(iblip, images):
    calls = []
    handle = iblip.model.vision_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        iblip.extract(images, PROMPTS, [-1], reuse=True)
        assert len(calls) == len(images)
        calls.clear()
        iblip.extract(images, PROMPTS, [-1], reuse=False)
        assert len(calls) == len(images) * len(PROMPTS)
    finally:
        handle.remove()


def test_instructblip_rejections(iblip, images):
    with pytest.raises(ValueError, match=r"pooling='generated' is for the language components"):
        iblip.extract(images, PROMPTS, "all", pooling="generated", component="qformer")
    with pytest.raises(ValueError, match=r"one image per stimulus"):
        iblip.extract([images], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"qformer component takes 'mean'"):
        iblip.extract(images, PROMPTS, "all", component="qformer", pooling="last")
    with pytest.raises(ValueError, match=r"layers=\[4\].*qformer component"):
        iblip.extract(images, PROMPTS, [4], component="qformer")


@pytest.mark.parametrize("gen", [GenerationConfig(max_new_tokens=6),
                                 GenerationConfig(max_new_tokens=6, do_sample=True, top_k=50, seed=4)])
def test_generated_pooling_reuse_equals_naive(iblip, images, gen):
    iblip.prompt_batch_size = 2
    naive = iblip.extract(images, PROMPTS, "all", pooling="generated", reuse=False, generation=gen)
    reuse = iblip.extract(images, PROMPTS, "all", pooling="generated", reuse=True, generation=gen)
    for name in PROMPTS:
        assert naive[name].meta["generated_text"] == reuse[name].meta["generated_text"]
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5


def test_greedy_decoding_matches_hf_generate(iblip, images):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(iblip.meta["source"], local_files_only=True)
    enc = proc(images=images[0], text=PROMPTS["people"], return_tensors="pt")
    ids, _, qids = iblip.tokenize(PROMPTS["people"])
    with torch.inference_mode():
        ref = iblip.model.generate(**enc, max_new_tokens=8, do_sample=False, suppress_tokens=[iblip.image_token_id])
        lm_inputs = iblip.model.get_image_features(pixel_values=iblip.process_image(images[0]),
                                                   qformer_input_ids=qids[None], return_dict=True).pooler_output
        mine = iblip._decode([(ids, lm_inputs[0])], GenerationConfig(max_new_tokens=8))[0]
    assert ref[0, -mine.numel():].tolist() == mine.tolist()
