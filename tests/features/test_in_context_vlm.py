"""In-context prompts with example stimuli on tiny Qwen2-VL, LLaVA and Idefics2 checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign.features.in_context import Example, InContext, choose_examples, tokenize_in_context
from brainalign.features.in_context_extract import extract_in_context, in_context_features
from brainalign.features.registry import load_extractor
from brainalign.features.tiny.models import build_tiny_idefics2

from vlm_fixtures import PROMPTS, tiny_extractor

POOLINGS = ["mean", "stimulus", "prompt", "last"]
ANSWERS = ["A red square.", "Two small dots on grey.", "A person by a car.", "An empty room.", "Blue sky."]


@pytest.fixture(scope="module")
def stims():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (56, 56, 3), dtype=np.uint8) for _ in range(5)]


@pytest.fixture(scope="module")
def idefics2(tmp_path_factory):
    return load_extractor(build_tiny_idefics2(tmp_path_factory.mktemp("tiny_idefics2_icl")), device="cpu")


def _extractor(arch, idefics2):
    return idefics2 if arch == "idefics2" else tiny_extractor(arch)


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava", "idefics2"])
def test_k0_equals_the_plain_path_exactly(arch, idefics2, stims):
    ex = _extractor(arch, idefics2)
    for pooling in POOLINGS:
        plain = ex.extract(stims[:3], PROMPTS, [0, -1], pooling=pooling, reuse=False)
        icl = in_context_features(ex, stims[:3], PROMPTS, ANSWERS[:3], k=0, layers=[0, -1], pooling=pooling)
        for name in PROMPTS:
            np.testing.assert_array_equal(icl[name].values, plain[name].values)
    # the attention component (block self-attention outputs) through the same path
    plain = ex.extract(stims[:2], PROMPTS, [1, -1], pooling="prompt", component="attention", reuse=False)
    icl = in_context_features(ex, stims[:2], PROMPTS, ANSWERS[:2], k=0, layers=[1, -1], pooling="prompt",
                              component="attention")
    for name in PROMPTS:
        np.testing.assert_array_equal(icl[name].values, plain[name].values)
    # the response to the query: same text, same features
    plain = ex.extract(stims[:2], PROMPTS, [0, -1], pooling="generated", reuse=False)
    icl = in_context_features(ex, stims[:2], PROMPTS, ANSWERS[:2], k=0, layers=[0, -1], pooling="generated")
    for name in PROMPTS:
        assert icl[name].meta["generated_text"] == plain[name].meta["generated_text"]
        np.testing.assert_allclose(icl[name].values, plain[name].values, atol=1e-5, rtol=0)
    # same tokens and token roles
    inputs, kind = ex.process_stimulus([stims[0]])
    counts = tuple(ex.tokens_per_frame(inputs))
    ref = ex.tokenize(PROMPTS["people"], counts, kind)
    seq = tokenize_in_context(ex, PROMPTS["people"], (kind, counts))
    assert torch.equal(seq.ids, ref.ids) and seq.query_start == 0
    assert torch.equal(seq.masks.stimulus, ref.masks.stimulus) and torch.equal(seq.masks.prompt, ref.masks.prompt)


def _reference_inputs(ex, arch, stims, prompt, answers):
    """The model's own inputs for a hand-written chat: examples (stims[:-1], answers), then the query stims[-1]."""
    inputs = [ex.process_frames([s]) for s in stims]  # examples first, the query last
    n = ex.tokens_per_frame(inputs[0])[0]
    if arch == "qwen2_vl":
        block = "<|vision_start|>" + "<|image_pad|>" * n + "<|vision_end|>"
        turn = "<|im_start|>user\n{b}{p}<|im_end|>\n<|im_start|>assistant\n"
        text = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" + "".join(
            turn.format(b=block, p=prompt) + f"{a}<|im_end|>\n" for a in answers) + turn.format(b=block, p=prompt)
        ids = torch.tensor([ex.tokenizer(text)["input_ids"]])
        kwargs = dict(pixel_values=torch.cat([i["pixel_values"] for i in inputs]),
                      image_grid_thw=torch.cat([i["image_grid_thw"] for i in inputs]),
                      mm_token_type_ids=(ids == ex.image_token_id).int())
    else:
        block = "<image>" * n
        text = "".join(f"USER: {block}\n{prompt} ASSISTANT: {a}</s>" for a in answers) + \
            f"USER: {block}\n{prompt} ASSISTANT:"
        ids = torch.tensor([ex.tokenizer(text)["input_ids"]])
        kwargs = dict(pixel_values=torch.cat([i["pixel_values"] for i in inputs]))
    return ids, kwargs


def _reference_last(ex, arch, stims, prompt, answers):
    """Last-token states of the model's own forward over a hand-written two-example chat."""
    ids, kwargs = _reference_inputs(ex, arch, stims, prompt, answers)
    with torch.inference_mode():
        out = ex.model(input_ids=ids, **kwargs, output_hidden_states=True)
    ex.reset_state()
    return torch.stack(out.hidden_states)[:, 0, -1].numpy()


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava"])
def test_features_match_the_models_own_multi_image_forward(arch, stims):
    """Example embeddings scattered in order and whole-chat positions (Qwen's M-RoPE) as the model computes them."""
    ex = tiny_extractor(arch)
    prompt = PROMPTS["describe"]
    ctx = InContext(examples=[(stims[1], ANSWERS[1]), (stims[2], ANSWERS[2])])
    got = extract_in_context(ex, stims[:1], {"d": prompt}, ctx, "all", pooling="last")["d"].values[0]
    ref = _reference_last(ex, arch, [stims[1], stims[2], stims[0]], prompt, ANSWERS[1:3])
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    plain = ex.extract(stims[:1], {"d": prompt}, "all", pooling="last")["d"].values[0]
    assert np.abs(got[-1] - plain[-1]).max() > 1e-3  # the examples do reach the query


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava"])
def test_response_to_the_query_matches_hf_generate(arch, stims):
    from brainalign.features.pooling import GenerationConfig

    ex = tiny_extractor(arch)
    prompt = PROMPTS["people"]
    ctx = InContext(examples=[(stims[1], ANSWERS[1]), (stims[2], ANSWERS[2])])
    fs = extract_in_context(ex, stims[:1], {"p": prompt}, ctx, [-1], pooling="generated",
                            generation=GenerationConfig(max_new_tokens=8))["p"]
    ids, kwargs = _reference_inputs(ex, arch, [stims[1], stims[2], stims[0]], prompt, ANSWERS[1:3])
    with torch.inference_mode():
        ref = ex.model.generate(input_ids=ids, **kwargs, max_new_tokens=8, do_sample=False,
                                suppress_tokens=ex.placeholder_token_ids())[0, ids.shape[1]:]
    ex.reset_state()
    assert fs.meta["generated_text"] == [ex.tokenizer.decode(ref, skip_special_tokens=True)]
    assert fs.meta["in_context"]["n_pooled_tokens"] == [ref.numel()]


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava", "idefics2"])
def test_masks_sit_on_the_query_only(arch, idefics2, stims):
    ex = _extractor(arch, idefics2)
    prompt = PROMPTS["people"]
    counts = [tuple(ex.tokens_per_frame(ex.process_frames([s]))) for s in stims[:3]]
    turns = [(("image", counts[1]), prompt, ANSWERS[1]), (None, prompt, ANSWERS[2])]  # one with, one without stimulus
    seq = tokenize_in_context(ex, prompt, ("image", counts[0]), turns)
    image = torch.isin(seq.ids, torch.tensor(ex.placeholder_token_ids()))
    positions = image.nonzero().flatten()
    n_q = sum(counts[0])
    assert int(image.sum()) == sum(counts[0]) + sum(counts[1])
    # stimulus mask: exactly the last n_q placeholder tokens (the query's), none of the example's
    assert seq.masks.stimulus.nonzero().flatten().tolist() == positions[-n_q:].tolist()
    assert int(positions[-n_q]) >= seq.query_start > int(positions[:-n_q].max())  # examples before the query turn
    # prompt mask: the query's instruction, after the last example answer
    assert ex.tokenizer.decode(seq.ids[seq.masks.prompt]).strip() == prompt
    assert int(seq.masks.prompt.nonzero()[0]) > int(positions[-n_q])
    text_before = ex.tokenizer.decode(seq.ids[: seq.query_start])
    assert ANSWERS[2] in text_before and ANSWERS[1] in text_before and text_before.count(prompt) == 2
    query_turn = ex.tokenizer.decode(seq.ids[seq.query_start:])
    assert prompt in query_turn and not any(a in query_turn for a in ANSWERS)


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava"])
def test_examples_reach_pooled_features_only_through_attention(arch, stims):
    """Another example answer (longer) and image: layer 0 (token embeddings) of the pooled
    query tokens is unchanged, the last layer changes."""
    ex = tiny_extractor(arch)
    a = InContext(examples=[(stims[1], "A red square."), Example("Blue.", stims[2])])
    b = InContext(examples=[(stims[3], "Two dots on a grey field, far apart."), Example("Blue.", stims[2])])
    for pooling in POOLINGS:
        fa = extract_in_context(ex, stims[:1], PROMPTS, a, [0, -1], pooling=pooling)
        fb = extract_in_context(ex, stims[:1], PROMPTS, b, [0, -1], pooling=pooling)
        for name in PROMPTS:
            np.testing.assert_array_equal(fa[name].values[:, 0], fb[name].values[:, 0])
            assert np.abs(fa[name].values[:, 1] - fb[name].values[:, 1]).max() > 1e-4, (pooling, name)
    # only the answer text differs: the 'prompt'-pooled last layer still moves (attention), layer 0 does not
    c = InContext(examples=[(stims[1], "A blue circle."), Example("Blue.", stims[2])])
    fa = extract_in_context(ex, stims[:1], PROMPTS, a, [0, -1], pooling="prompt")
    fc = extract_in_context(ex, stims[:1], PROMPTS, c, [0, -1], pooling="prompt")
    np.testing.assert_array_equal(fa["caption"].values[:, 0], fc["caption"].values[:, 0])
    assert np.abs(fa["caption"].values[:, 1] - fc["caption"].values[:, 1]).max() > 1e-4
    assert fa["caption"].meta["in_context"]["n_pooled_tokens"] == fc["caption"].meta["in_context"]["n_pooled_tokens"]


def test_text_only_examples_show_no_example_stimulus(stims):
    ex = tiny_extractor("qwen2_vl")
    with_s = in_context_features(ex, stims[:3], PROMPTS, ANSWERS[:3], k=1, layers=[-1], pooling="last")
    text = in_context_features(ex, stims[:3], PROMPTS, ANSWERS[:3], k=1, with_stimuli=False, layers=[-1],
                               pooling="last")
    plain = ex.extract(stims[:3], PROMPTS, [-1], pooling="last")
    assert text["caption"].meta["in_context"]["examples"] == with_s["caption"].meta["in_context"]["examples"]
    n_img = ex.tokens_per_frame(ex.process_frames([stims[0]]))[0]
    diff = np.subtract(with_s["caption"].meta["in_context"]["n_input_tokens"],
                       text["caption"].meta["in_context"]["n_input_tokens"])
    assert (diff == n_img + 2).all()  # the example's image block (vision start/end + pads) is gone
    for other in (with_s, plain):
        assert np.abs(text["caption"].values - other["caption"].values).max() > 1e-3


def test_seeded_choice_of_examples(stims):
    ids = [f"s{i}" for i in range(8)]
    a = choose_examples(ids, 3, seed=4)
    assert a == choose_examples(ids, 3, seed=4)
    assert a != choose_examples(ids, 3, seed=5)
    assert all(len(ex) == 3 == len(set(ex)) and i not in ex for i, ex in enumerate(a))
    # each query's draw ignores the order in which the stimuli are listed
    order = np.random.default_rng(0).permutation(8)
    b = choose_examples([ids[j] for j in order], 3, seed=4)
    for pos, j in enumerate(order):
        assert [ids[order[e]] for e in b[pos]] == [ids[e] for e in a[j]]
    # a stimulus with the same content under another id is never its own example
    same = choose_examples(ids[:4], 2, seed=0, identity=["x", "y", "z", "x"])
    assert 3 not in same[0] and 0 not in same[3]
    # the pool restricts the candidates
    assert all(set(ex) <= {1, 2} for i, ex in enumerate(choose_examples(ids[:4], 1, seed=0, pool=[1, 2])))
    # the study-level call records what it drew, and a duplicate image is never its own example
    ex = tiny_extractor("llava")
    dup = [stims[0], stims[1], stims[2], stims[0].copy()]
    fs = in_context_features(ex, dup, {"c": PROMPTS["caption"]}, ANSWERS[:4], k=2, seed=3, layers=[-1],
                             pooling="last", stimulus_ids=["a", "b", "c", "d"])["c"]
    drawn = fs.meta["in_context"]["examples"]
    assert "d" not in drawn[0] and "a" not in drawn[3]
    assert drawn == [["abcd"[j] for j in e] for e in choose_examples("abcd", 2, 3, identity=["0", "1", "2", "0"])]


def test_bad_inputs_rejected_with_the_fix(stims):
    ex = tiny_extractor("qwen2_vl")
    with pytest.raises(ValueError, match=r"k=3 in-context examples: query '0' has only 2 other.*Lower k to at most 2"):
        in_context_features(ex, stims[:3], PROMPTS, ANSWERS[:3], k=3)
    with pytest.raises(ValueError, match=r"answers\[1\] is empty .*needs its worked answer"):
        in_context_features(ex, stims[:3], PROMPTS, ["a", " ", "c"], k=1)
    with pytest.raises(ValueError, match=r"examples\[0\] has an empty answer"):
        InContext(examples=[(stims[0], "")])
    with pytest.raises(ValueError, match=r"answers has 2 entries for 3 stimuli"):
        in_context_features(ex, stims[:3], PROMPTS, ANSWERS[:2], k=1)
    with pytest.raises(ValueError, match=r"pool names \['zz'\] are not stimulus ids"):
        in_context_features(ex, stims[:3], PROMPTS, ANSWERS[:3], k=1, pool=["zz"])
    ctx = InContext(examples=[(stims[1], "x")])
    with pytest.raises(ValueError, match=r"pooling='sum' is not supported"):
        extract_in_context(ex, stims[:1], PROMPTS, ctx, pooling="sum")
    with pytest.raises(ValueError, match=r"component='vision'.*use 'language' or 'attention'"):
        extract_in_context(ex, stims[:1], PROMPTS, ctx, component="vision")
    with pytest.raises(ValueError, match=r"contexts must be one InContext or a list of 2"):
        extract_in_context(ex, stims[:2], PROMPTS, [ctx])
    with pytest.raises(ValueError, match=r"contexts\[0\].examples\[0\].stimulus: .*dtype float64"):
        extract_in_context(ex, stims[:1], PROMPTS, InContext(examples=[(stims[1] / 255.0, "x")]))
    with pytest.raises(ValueError, match=r"need a chat model"):
        extract_in_context(object(), stims[:1], PROMPTS, ctx)


def test_config_spec_drives_the_call(tmp_path, stims):
    import yaml

    from brainalign.config import ConfigError, load_config
    from brainalign.features.in_context_extract import in_context_from_spec
    from test_config import DEMO

    raw = load_config(DEMO).model_dump(mode="json")
    raw["analysis"]["controls"] = {"in_context": {"k": 2, "with_stimuli": True, "answer": "A {stimulus}."}}
    path = tmp_path / "icl.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="text models"):  # a text model cannot see example stimuli
        load_config(path)
    raw["analysis"]["controls"]["in_context"]["with_stimuli"] = False
    path.write_text(yaml.safe_dump(raw))
    spec = load_config(path).analysis.controls.in_context
    spec.with_stimuli = True  # as a multimodal study's config would say
    assert spec.k == 2 and spec.with_stimuli and spec.answer == "A {stimulus}."
    names = ["cat", "dog", "cow", "owl"]
    ex = tiny_extractor("llava")
    fs = in_context_from_spec(ex, spec, stims[:4], names, {"c": PROMPTS["caption"]}, seed=7, layers=[-1],
                              pooling="last")["c"]
    icl = fs.meta["in_context"]
    assert fs.stimulus_ids == names and icl["k"] == 2 and icl["with_stimuli"] is True
    assert icl["examples"] == [[names[j] for j in e] for e in choose_examples(names, 2, 7)]
    assert icl["answers"][0] == [f"A {s}." for s in icl["examples"][0]]
    # the examples field restricts the pool to named stimuli
    spec.examples = ["dog", "cow", "owl"]
    fs = in_context_from_spec(ex, spec, stims[:4], names, {"c": PROMPTS["caption"]}, seed=7, layers=[-1],
                              pooling="last")["c"]
    drawn = fs.meta["in_context"]["examples"]
    assert set(drawn[0]) <= {"dog", "cow", "owl"} and len(drawn[0]) == 2  # 'cat' is not in the pool
    assert all(set(e) <= {"dog", "cow", "owl"} and n not in e for n, e in zip(names, drawn))
    spec.k = 3
    with pytest.raises(ValueError, match="query 'dog' has only 2 other stimuli"):
        in_context_from_spec(ex, spec, stims[:4], names, {"c": PROMPTS["caption"]}, seed=7)
    for bad, match in (("  ", "in_context.answer is empty"), ("{label}", "only use the '{stimulus}' placeholder")):
        raw["analysis"]["controls"]["in_context"]["answer"] = bad
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(ConfigError, match=match):
            load_config(path)


def test_video_examples_match_the_models_own_forward():
    """Clips as examples and query: video grids and clip timings of all clips enter Qwen2.5-VL's M-RoPE in order."""
    from brainalign.features.hf_multimodal import Video

    ex = tiny_extractor("qwen2_5_vl")
    rng = np.random.default_rng(3)
    clips = [Video(rng.integers(0, 256, (n, 56, 56, 3), dtype=np.uint8), fps=f) for n, f in ((2, 2.0), (4, 1.0))]
    prompt = PROMPTS["describe"]
    got = extract_in_context(ex, clips[:1], {"d": prompt}, InContext(examples=[(clips[1], "A busy street.")]),
                             "all", pooling="last")["d"].values[0]
    inputs = [ex.process_video(clips[1]), ex.process_video(clips[0])]
    block = lambda inp: "<|vision_start|>" + "<|video_pad|>" * sum(ex.tokens_per_frame(inp)) + "<|vision_end|>"
    text = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            f"<|im_start|>user\n{block(inputs[0])}{prompt}<|im_end|>\n<|im_start|>assistant\nA busy street.<|im_end|>\n"
            f"<|im_start|>user\n{block(inputs[1])}{prompt}<|im_end|>\n<|im_start|>assistant\n")
    ids = torch.tensor([ex.tokenizer(text)["input_ids"]])
    with torch.inference_mode():
        out = ex.model(input_ids=ids, mm_token_type_ids=2 * (ids == ex.video_token_id).int(),
                       **{k: torch.cat([i[k] for i in inputs]) for k in inputs[0]}, output_hidden_states=True)
    ex.reset_state()
    np.testing.assert_allclose(got, torch.stack(out.hidden_states)[:, 0, -1].numpy(), atol=1e-5, rtol=0)


def test_audio_examples_match_the_real_processor(tmp_path):
    """Qwen2-Audio: example and query waveforms through the real processor and the model's own forward."""
    from transformers import AutoProcessor

    from brainalign.features.tiny.models import build_tiny_qwen2_audio

    ex = load_extractor(build_tiny_qwen2_audio(tmp_path / "qaudio"), device="cpu")
    rng = np.random.default_rng(9)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (16000, 24000)]
    prompt = PROMPTS["people"]
    got = extract_in_context(ex, waves[:1], {"p": prompt}, InContext(examples=[(waves[1], "Rain on a roof.")]),
                             "all", pooling="mean", sampling_rate=16000)["p"]
    audio = [{"type": "audio", "audio_url": "x"}]
    messages = [{"role": "user", "content": audio + [{"type": "text", "text": prompt}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Rain on a roof."}]},
                {"role": "user", "content": audio + [{"type": "text", "text": prompt}]}]
    proc = AutoProcessor.from_pretrained(ex.meta["source"], local_files_only=True)
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "Audio 2:" in text  # the template numbers the clips across turns
    enc = proc(text=text, audio=[waves[1], waves[0]], sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        ref = torch.stack(ex.model(**enc, output_hidden_states=True).hidden_states)[:, 0]
    query = ex.tokenizer.decode(enc["input_ids"][0]).rfind("<|im_start|>user")
    start = len(ex.tokenizer(ex.tokenizer.decode(enc["input_ids"][0])[:query])["input_ids"])
    assert got.meta["in_context"]["n_input_tokens"] == [enc["input_ids"].shape[1]]
    np.testing.assert_allclose(got.values[0], ref[:, start:].mean(1).numpy(), atol=1e-5, rtol=0)


def test_in_context_features_are_cached_per_prompt_for_the_next_subject(tmp_path, stims, monkeypatch):
    """MultimodalReader.in_context with a store: the second subject of a study (same clips, same spec) reads every
    prompt's array from the cache, bit for bit, and runs no in-context forward pass; another seed is another entry."""
    from types import SimpleNamespace

    import brainalign.features.in_context_extract as ice
    from brainalign.config import InContextSpec, ModelSpec
    from brainalign.features.models import MultimodalReader
    from brainalign.features.store import FeatureStore

    reader = object.__new__(MultimodalReader)
    reader.ex, reader.stimuli, reader.options, reader.fingerprint = tiny_extractor("llava"), stims[:4], {}, "tiny-llava"
    reader.spec = ModelSpec(name="m", source="x", kind="multimodal", pooling="last")
    reader.data = SimpleNamespace(stimuli=["cat", "dog", "cow", "owl"])
    spec, prompts = InContextSpec(k=2, with_stimuli=True), {"c": PROMPTS["caption"], "d": PROMPTS["describe"]}
    store = FeatureStore(tmp_path / "cache")
    first = reader.in_context(spec, prompts, 7, 1, store)
    assert store.misses == 2 and store.hits == 0 and first["c"].shape[0] == 4
    calls = []
    real = ice.in_context_from_spec
    monkeypatch.setattr(ice, "in_context_from_spec", lambda *a, **kw: calls.append(a[4]) or real(*a, **kw))
    again = reader.in_context(spec, prompts, 7, 1, store)
    assert calls == [] and store.hits == 2
    for name in prompts:
        np.testing.assert_array_equal(again[name], first[name])
    other = reader.in_context(spec, prompts, 8, 1, store)  # another seed draws other examples: computed again
    assert calls == [prompts] and store.misses == 4 and not np.array_equal(other["c"], first["c"])
