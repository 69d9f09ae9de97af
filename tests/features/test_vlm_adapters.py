"""Vision-language adapters: what is read, how it is pooled, what is rejected."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.base import FeatureSet
from brainalign.features.pooling import GenerationConfig

from vlm_fixtures import PROMPTS, arch, extractors, images  # noqa: F401 - pytest fixtures


def _manual_text(arch: str, prompt: str, n_image_tokens: int) -> str:
    """The chat text written out by hand, independently of the adapter's templating."""
    if arch.startswith("qwen"):
        return (
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|>" + "<|image_pad|>" * n_image_tokens + "<|vision_end|>"
            f"{prompt}<|im_end|>\n<|im_start|>assistant\n"
        )
    if arch == "internvl":
        return (
            "<|im_start|>user\n<img>" + "<IMG_CONTEXT>" * n_image_tokens + "</img>\n"
            f"{prompt}<|im_end|>\n<|im_start|>assistant\n"
        )
    return "USER: " + "<image>" * n_image_tokens + f"\n{prompt} ASSISTANT:"


def _reference_hidden(ex, arch, image, prompt):
    """All LM hidden states (n_states, seq, dim) from a hand-built input and the plain HF forward."""
    inputs = ex.process_image(image)
    n_tok = ex.n_stimulus_tokens(inputs)
    ids = torch.tensor([ex.tokenizer(_manual_text(arch, prompt, n_tok))["input_ids"]])
    kwargs = dict(input_ids=ids, **inputs)
    if arch.startswith("qwen"):
        kwargs["mm_token_type_ids"] = (ids == ex.model.config.image_token_id).int()
    if arch.startswith("qwen"):
        ex.model.model.rope_deltas = None
    with torch.inference_mode():
        out = ex.model(**kwargs, output_hidden_states=True)
    if arch.startswith("qwen"):
        ex.model.model.rope_deltas = None
    return torch.stack(out.hidden_states)[:, 0], ids[0]


def test_registry_builds_the_right_adapter(extractors):
    from brainalign.features.base import Extractor

    assert type(extractors["qwen2_5_vl"]).__name__ == type(extractors["qwen2_vl"]).__name__ == "QwenVLExtractor"
    assert type(extractors["llava"]).__name__ == "LlavaExtractor"
    assert type(extractors["internvl"]).__name__ == "InternVLExtractor"
    for ex in extractors.values():
        assert isinstance(ex, Extractor)
        assert ex.n_layers == 2


@pytest.mark.parametrize("pooling", ["mean", "last", "stimulus", "prompt"])
def test_features_match_hand_built_reference(extractors, arch, images, pooling):
    ex = extractors[arch]
    feats = ex.extract(images[:1], {"q": PROMPTS["people"]}, "all", pooling=pooling, reuse=False)["q"]
    ref, ids = _reference_hidden(ex, arch, images[0], PROMPTS["people"])
    if pooling == "mean":
        expected = ref.mean(1)
    elif pooling == "last":
        expected = ref[:, -1]
    elif pooling == "stimulus":
        expected = ref[:, ids == ex.model.config.image_token_id].mean(1)
    else:
        n_prompt = len(ex.tokenizer(PROMPTS["people"], add_special_tokens=False)["input_ids"])
        # the prompt's tokens sit right before the closing template tokens
        closing = " ASSISTANT:" if arch == "llava" else "<|im_end|>\n<|im_start|>assistant\n"
        n_tail = len(ex.tokenizer(closing)["input_ids"])
        expected = ref[:, -(n_prompt + n_tail) : -n_tail].mean(1)
    assert feats.values.shape == (1, 3, 64)
    np.testing.assert_allclose(feats.values[0], expected.numpy(), atol=1e-5, rtol=0)


def test_featureset_contents(extractors, arch, images):
    ex = extractors[arch]
    out = ex.extract(images, PROMPTS, [-1, 0.5], pooling="last", stimulus_ids=["a", "b"])
    assert list(out) == list(PROMPTS)
    fs = out["describe"]
    assert isinstance(fs, FeatureSet)
    assert fs.values.shape == (2, 2, 64) and fs.values.dtype == np.float32
    assert fs.layers == [1, 2] and fs.stimulus_ids == ["a", "b"]
    assert fs.meta["prompt_text"] == PROMPTS["describe"] and fs.meta["pooling"] == "last"
    assert fs.meta["model_type"] == arch
    # different prompts and different images give different features
    assert np.abs(out["describe"].values - out["caption"].values).max() > 1e-3
    assert np.abs(fs.values[0] - fs.values[1]).max() > 1e-3


def test_stimulus_pooling_does_not_depend_on_prompt(extractors, arch, images):
    # the image precedes the instruction and attention is causal
    out = extractors[arch].extract(images, PROMPTS, "all", pooling="stimulus")
    np.testing.assert_array_equal(out["caption"].values, out["people"].values)
    assert np.abs(out["caption"].values[0] - out["caption"].values[1]).max() > 1e-3


def test_prompt_mask_covers_exactly_the_prompt(extractors, arch):
    ex = extractors[arch]
    report = ex.token_report(PROMPTS, n_stimulus_tokens=4)
    for name, text in PROMPTS.items():
        seq = ex.tokenize(text, 4)
        picked = ex.tokenizer.decode(seq.ids[seq.masks.prompt])
        assert picked.strip() == text
        assert report[name]["prompt_tokens_in_context"] == report[name]["prompt_tokens"]
        assert report[name]["input_tokens"] == seq.ids.numel()


def test_qwen_uses_3d_mrope_positions(extractors, images):
    """Without mm_token_type_ids transformers silently uses 1-D positions; the adapter must not."""
    ex = extractors["qwen2_5_vl"]
    inputs = ex.process_image(images[0])
    seq = ex.tokenize(PROMPTS["caption"], ex.n_stimulus_tokens(inputs))
    pos = ex.position_ids(seq.ids[None], inputs)
    assert pos.shape == (3, 1, seq.ids.numel())
    img = seq.masks.stimulus
    assert not torch.equal(pos[1, 0, img], pos[2, 0, img])  # rows and columns differ on image tokens
    feats = ex.extract(images[:1], {"c": PROMPTS["caption"]}, "all", pooling="last", reuse=False)["c"].values[0]
    with torch.inference_mode():
        one_d = ex.model(input_ids=seq.ids[None], **inputs, output_hidden_states=True)
    ex.model.model.rope_deltas = None
    one_d = torch.stack(one_d.hidden_states)[:, 0, -1].numpy()
    assert np.abs(feats[1:] - one_d[1:]).max() > 1e-4


@pytest.mark.parametrize("arch_, n_tokens", [("qwen2_5_vl", 8), ("internvl", 12)])
def test_non_square_image_changes_token_count(extractors, arch_, n_tokens):
    # Qwen: (56/14)*(112/14)/4 merged patches; InternVL: 2 tiles + thumbnail, 4 tokens each
    ex = extractors[arch_]
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (56, 112, 3), dtype=np.uint8)
    naive = ex.extract([img], PROMPTS, "all", pooling="mean", reuse=False)
    reuse = ex.extract([img], PROMPTS, "all", pooling="mean", reuse=True)
    assert naive["caption"].meta["n_stimulus_tokens"] == [n_tokens]
    for name in PROMPTS:
        assert np.abs(naive[name].values - reuse[name].values).max() <= 1e-5


def test_vision_and_connector_components(extractors, arch, images):
    ex = extractors[arch]
    vis = ex.extract(images, PROMPTS, "all", component="vision")
    assert vis["caption"].values.shape == (2, 3, 32)
    np.testing.assert_array_equal(vis["caption"].values, vis["people"].values)
    con = ex.extract(images, PROMPTS, "all", component="connector")["caption"]
    assert con.values.shape == (2, 1, 64) and con.layers == [0]
    # the connector output is what replaces the image tokens at the LM input (hidden state 0)
    lm0 = ex.extract(images, PROMPTS, [0], pooling="stimulus")["caption"].values
    np.testing.assert_allclose(con.values, lm0, atol=1e-5)
    if arch == "llava":
        # reference: the CLIP tower's own hidden states, mean over all tokens
        inputs = ex.process_image(images[0])
        with torch.inference_mode():
            ref = ex.model.model.vision_tower(inputs["pixel_values"], output_hidden_states=True).hidden_states
        np.testing.assert_allclose(vis["caption"].values[0, 1], ref[1][0].mean(0).numpy(), atol=1e-5)


def test_greedy_generation_is_deterministic_and_kept(extractors, arch, images):
    ex = extractors[arch]
    gen = GenerationConfig(max_new_tokens=4)
    a = ex.extract(images, {"d": PROMPTS["describe"]}, [-1], pooling="generated", generation=gen)["d"]
    b = ex.extract(images, {"d": PROMPTS["describe"]}, [-1], pooling="generated", generation=gen)["d"]
    np.testing.assert_array_equal(a.values, b.values)
    assert a.meta["generated_text"] == b.meta["generated_text"] and len(a.meta["generated_text"]) == 2
    assert a.meta["generation"]["do_sample"] is False
    # generated-token pooling differs from input pooling
    mean = ex.extract(images, {"d": PROMPTS["describe"]}, [-1], pooling="mean")["d"]
    assert np.abs(a.values - mean.values).max() > 1e-4


def test_seeded_sampling_is_reproducible(extractors, images):
    ex = extractors["llava"]
    runs = {}
    for seed in (0, 0, 1):
        gen = GenerationConfig(max_new_tokens=8, do_sample=True, top_k=50, seed=seed)
        fs = ex.extract(images[:1], {"d": PROMPTS["describe"]}, [-1], pooling="generated", generation=gen)["d"]
        runs.setdefault(seed, []).append(fs)
    assert runs[0][0].meta["generated_text"] == runs[0][1].meta["generated_text"]
    np.testing.assert_array_equal(runs[0][0].values, runs[0][1].values)
    assert runs[0][0].meta["generated_text"] != runs[1][0].meta["generated_text"]


def test_extraction_is_unaffected_by_previous_generation(extractors, images):
    """Qwen keeps rope_deltas between calls; the adapter resets it."""
    ex = extractors["qwen2_5_vl"]
    before = ex.extract(images, PROMPTS, "all", pooling="last", reuse=False)
    ex.extract(images[:1], {"d": PROMPTS["describe"]}, [-1], pooling="generated",
               generation=GenerationConfig(max_new_tokens=3))
    after = ex.extract(images, PROMPTS, "all", pooling="last", reuse=False)
    for name in PROMPTS:
        np.testing.assert_array_equal(before[name].values, after[name].values)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((56, 56, 3), dtype=np.float32), r"stimuli\[0\] has dtype float32.*astype\(np.uint8\)"),
        (np.zeros((56, 56), dtype=np.uint8), r"stimuli\[0\] has shape \(56, 56\).*\(H, W, 3\)"),
        (np.zeros((56, 56, 4), dtype=np.uint8), r"stimuli\[0\] has shape \(56, 56, 4\).*alpha"),
        (np.zeros((20, 56, 3), dtype=np.uint8), r"at least 28 pixels"),
        ("image.png", r"stimuli\[0\] is a str"),
    ],
)
def test_bad_images_rejected(extractors, bad, match):
    with pytest.raises(ValueError, match=match):
        extractors["llava"].extract([bad], PROMPTS, "all")


def test_bad_arguments_rejected(extractors, images):
    ex = extractors["qwen2_5_vl"]
    with pytest.raises(ValueError, match=r"prompts\['empty'\] is empty"):
        ex.extract(images, {"ok": "Describe.", "empty": "   "}, "all")
    with pytest.raises(ValueError, match=r"prompts is empty"):
        ex.extract(images, {}, "all")
    with pytest.raises(ValueError, match=r"layers=\[5\].*out of range.*valid: 0\.\.2"):
        ex.extract(images, PROMPTS, [5])
    with pytest.raises(ValueError, match=r"layers=\[1\.5\].*outside \[0, 1\]"):
        ex.extract(images, PROMPTS, [1.5])
    with pytest.raises(ValueError, match=r"layers=\[3\].*vision component.*valid: 0\.\.2"):
        ex.extract(images, PROMPTS, [3], component="vision")
    with pytest.raises(ValueError, match=r"pooling='max' is not supported"):
        ex.extract(images, PROMPTS, "all", pooling="max")
    with pytest.raises(ValueError, match=r"component='audio'"):
        ex.extract(images, PROMPTS, "all", component="audio")
    with pytest.raises(ValueError, match=r"stimuli is empty"):
        ex.extract([], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"stimulus_ids has 1 entries for 2 stimuli"):
        ex.extract(images, PROMPTS, "all", stimulus_ids=["x"])


def test_attention_component_is_the_block_attention_output(extractors, arch, images):
    """hidden[1] == mid + mlp(norm(mid)) with mid = hidden[0] + attention output of block 1."""
    ex = extractors[arch]
    prompt = {"p": PROMPTS["people"]}
    attn = ex.extract(images[:1], prompt, [1], pooling="last", component="attention")["p"].values[0, 0]
    hid = ex.extract(images[:1], prompt, [0, 1], pooling="last")["p"].values[0]
    block = ex.language_model.layers[0]
    with torch.inference_mode():
        mid = torch.from_numpy(hid[0] + attn)
        expected = mid + block.mlp(block.post_attention_layernorm(mid))
    np.testing.assert_allclose(hid[1], expected.numpy(), atol=1e-5)
    # and it is not the residual stream itself
    assert np.abs(attn - hid[1]).max() > 1e-3
    with pytest.raises(ValueError, match=r"attention component has no layer 0"):
        ex.extract(images[:1], prompt, [0], component="attention")


def test_greedy_decoding_matches_hf_generate(extractors, arch, images):
    ex = extractors[arch]
    inputs = ex.process_image(images[1])
    seq = ex.tokenize(PROMPTS["people"], ex.n_stimulus_tokens(inputs))
    with torch.inference_mode():
        mine = ex.generate_response(seq, inputs, GenerationConfig(max_new_tokens=10)).ids[seq.ids.numel():]
        ex.reset_state()
        ref = ex.model.generate(**ex.model_inputs(seq.ids[None], inputs), max_new_tokens=10, do_sample=False,
                                suppress_tokens=ex.placeholder_token_ids())[0, seq.ids.numel():]
        ex.reset_state()
    assert torch.equal(mine, ref)


# --------------------------------------------------------------- multi-frame
def test_frame_sequences(extractors, arch, images):
    """A stimulus may be several frames (consecutive images before the prompt)."""
    ex = extractors[arch]
    clip = np.stack([images[0], images[1]])
    out = ex.extract([clip, images[0], [images[0]], [images[1], images[0]]], PROMPTS, "all", pooling="mean")
    fs = out["caption"]
    assert fs.meta["n_frames"] == [2, 1, 1, 2]
    assert fs.meta["n_stimulus_tokens"][0] == 2 * fs.meta["n_stimulus_tokens"][1]
    np.testing.assert_array_equal(fs.values[1], fs.values[2])  # one-frame list == the image itself
    assert np.abs(fs.values[0] - fs.values[3]).max() > 1e-4  # frame order matters
    reuse = ex.extract([clip], PROMPTS, "all", pooling="last", reuse=True)
    naive = ex.extract([clip], PROMPTS, "all", pooling="last", reuse=False)
    for name in PROMPTS:
        assert np.abs(reuse[name].values - naive[name].values).max() <= 1e-5


def test_frame_sequence_matches_hand_built_reference(extractors, images):
    ex = extractors["qwen2_5_vl"]
    prompt = PROMPTS["describe"]
    inputs = ex.process_frames(images)
    n = ex.tokens_per_frame(inputs)
    assert n == [4, 4]
    block = "<|vision_start|>" + "<|image_pad|>" * 4 + "<|vision_end|>"
    text = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        f"{block}{block}{prompt}<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = torch.tensor([ex.tokenizer(text)["input_ids"]])
    with torch.inference_mode():
        ref = ex.model(input_ids=ids, mm_token_type_ids=(ids == ex.image_token_id).int(), **inputs,
                       output_hidden_states=True)
    ex.model.model.rope_deltas = None
    ref = torch.stack(ref.hidden_states)[:, 0].mean(1).numpy()
    got = ex.extract([images], {"d": prompt}, "all", pooling="mean")["d"].values[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_bad_frame_rejected(extractors, images):
    with pytest.raises(ValueError, match=r"stimuli\[1\]\[1\] has dtype float64"):
        extractors["llava"].extract([images[0], [images[0], images[1] / 255.0]], PROMPTS, "all")
    with pytest.raises(ValueError, match=r"stimuli\[0\] is empty"):
        extractors["llava"].extract([[]], PROMPTS, "all")
