"""Controls: untrained models, scrambled/neutral prompts, shuffled and Gaussian features, paired reporting."""
from __future__ import annotations

import warnings
from collections import Counter

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from brainalign import pipeline
from brainalign.analysis.summary import paired_test
from brainalign.brain.recording import Recording
from brainalign.config import ConfigError, ControlSpec, InContextSpec, load_config
from brainalign.pipeline.controls import (
    control_pairs_for_models,
    control_prompts,
    in_context_texts,
    control_spaces,
    controls_table,
    gaussian_features,
    scramble_prompt,
    stimulus_shuffled_features,
)
from brainalign.features.hf_text import TextExtractor
from brainalign.features.store import FeatureStore

from test_config import DEMO

NOUNS = ("apple hammer violin tiger bicycle candle river spoon ladder blanket rocket pillow shovel camera "
         "guitar lemon bridge kettle helmet pencil wallet ocean forest engine cactus mirror saddle anchor "
         "basket castle feather lantern needle orange parrot rabbit sandal tractor umbrella whistle").split()
PROMPTS = {"unprompted": "{stimulus}", "action": "what you would do with a {stimulus}"}
LAYER = 3


@pytest.fixture(scope="module")
def minilm() -> TextExtractor:
    return TextExtractor("builtin:minilm")


# ------------------------------------------------------------------ scrambled prompts
def test_scrambled_prompt_keeps_the_token_multiset_in_another_order(minilm):
    tok = minilm._load_tokenizer()
    for name, tpl in [("action", PROMPTS["action"]), ("perceptual", "the shape and color of a {stimulus}"),
                      ("neutral", "Look at the {stimulus}.")]:
        scr = scramble_prompt(tpl, seed=0, name=name)
        assert scr != tpl and scr.count("{stimulus}") == 1
        assert sorted(scr.split()) == sorted(tpl.split())
        for noun in ("violin", "scrambled picture"):
            a = tok(tpl.format(stimulus=noun), add_special_tokens=False)["input_ids"]
            b = tok(scr.format(stimulus=noun), add_special_tokens=False)["input_ids"]
            assert Counter(a) == Counter(b) and a != b
        assert scramble_prompt(tpl, seed=0, name=name) == scr  # seeded
    orders = {scramble_prompt(PROMPTS["action"], seed=s) for s in range(10)}
    assert len(orders) > 1


def test_scramble_rejects_templates_it_cannot_scramble():
    with pytest.raises(ValueError, match="more than once"):
        scramble_prompt("a {stimulus} next to a {stimulus}")
    bare = scramble_prompt("What is the caption of the image?")  # image prompts have no placeholder
    assert sorted(bare.split()) == sorted("What is the caption of the image?".split()) and bare != "What is the caption of the image?"
    with pytest.raises(ValueError, match="two distinct words"):
        scramble_prompt("{stimulus}")


def test_control_prompts_skip_the_unprompted_reference():
    out = control_prompts(dict(PROMPTS, other="a {stimulus} here"), "unprompted", ["scrambled", "neutral"],
                          "Look at the {stimulus}.", seed=1)
    assert set(out) == {"action~scrambled", "other~scrambled", "~neutral"}
    assert out["action~scrambled"][1:] == ("action", "scrambled")
    assert out["~neutral"] == ("Look at the {stimulus}.", None, "neutral")


# ------------------------------------------------------------------ in-context prompts
def test_in_context_texts_put_k_other_examples_before_each_query():
    texts, starts = in_context_texts("a {stimulus}.", ["cat", "dog", "cow"], k=2)
    assert texts == ["a dog. a cow. a cat.", "a cow. a cat. a dog.", "a cat. a dog. a cow."]
    assert [t[s:] for t, s in zip(texts, starts)] == ["a cat.", "a dog.", "a cow."]
    texts, starts = in_context_texts("a {stimulus}.", ["cat", "dog"], k=1, examples=["bee"], separator="\n")
    assert texts == ["a bee.\na cat.", "a bee.\na dog."]
    with pytest.raises(ValueError, match=r"at least k\+1"):
        in_context_texts("a {stimulus}", ["cat", "dog"], k=2)


def test_in_context_pooling_leaves_the_examples_tokens_out(minilm):
    import torch

    texts, starts = in_context_texts(PROMPTS["action"], ["violin", "hammer", "candle"], k=2)
    pooled = minilm.embed(texts, [LAYER], pool_from=starts)[:, 0]
    tok, model = minilm._tokenizer, minilm._model
    for i, text in enumerate(texts):  # reference: mean over the query's tokens and [CLS]/[SEP] only
        enc = tok([text], return_tensors="pt", return_offsets_mapping=True)
        off = enc.pop("offset_mapping")[0]
        with torch.inference_mode():
            states = model(**enc, output_hidden_states=True).hidden_states[LAYER][0]
        keep = (off[:, 0] >= starts[i]) | (off[:, 0] == off[:, 1])
        words = tok.convert_ids_to_tokens(enc["input_ids"][0][keep])
        assert words[1:-1] == tok.tokenize(text[starts[i]:])  # exactly the query's tokens
        np.testing.assert_allclose(pooled[i], states[keep].mean(0).numpy(), atol=1e-5)
    plain = minilm.embed([t[s:] for t, s in zip(texts, starts)], [LAYER])[:, 0]
    assert np.abs(pooled - plain).max() > 0.1  # the examples change the query's representation
    np.testing.assert_allclose(minilm.embed(texts, [LAYER], pool_from=[0] * 3), minilm.embed(texts, [LAYER]),
                               atol=1e-6)
    with pytest.raises(ValueError, match="one per text"):
        minilm.embed(texts, [LAYER], pool_from=[0])
    with pytest.raises(ValueError, match="pooling='cls'"):
        TextExtractor("builtin:minilm", pooling="cls").embed(texts, [LAYER], pool_from=starts)


# ------------------------------------------------------------------ feature controls
def test_stimulus_shuffle_permutes_features_within_each_run_only():
    rng = np.random.default_rng(0)
    n_stim, runs = 6, np.repeat([0, 1, 2], 12)
    design = np.zeros((36, n_stim), np.float32)
    design[np.arange(36), np.tile(np.arange(n_stim), 6)] = 1
    F = rng.standard_normal((n_stim, 4)).astype(np.float32)
    X = stimulus_shuffled_features(design, F, runs, seed=0)
    assert X.shape == (36, 4)
    true = design @ F
    for run in range(3):
        sel = runs == run
        # same feature vectors in the run, consistently re-assigned: a permutation of the stimulus rows
        shown = {tuple(np.round(x, 5)) for x in X[sel]}
        assert shown == {tuple(np.round(f, 5)) for f in F}
        assert not np.allclose(X[sel], true[sel])
        for s in range(n_stim):
            rows = X[sel & (design[:, s] == 1)]
            assert np.allclose(rows, rows[0])
    np.testing.assert_array_equal(X, stimulus_shuffled_features(design, F, runs, seed=0))
    assert not np.array_equal(X, stimulus_shuffled_features(design, F, runs, seed=1))
    with pytest.raises(ValueError, match="n_stimuli"):
        stimulus_shuffled_features(design, F[:5], runs, seed=0)
    with pytest.raises(ValueError, match="one run id per TR"):
        stimulus_shuffled_features(design, F, runs[:-1], seed=0)


def test_gaussian_features_are_seeded_standard_normal_of_matched_dimension():
    G = gaussian_features(500, 384, seed=3)
    assert G.shape == (500, 384) and G.dtype == np.float32
    assert abs(G.mean()) < 0.01 and abs(G.std() - 1) < 0.01
    np.testing.assert_array_equal(G, gaussian_features(500, 384, seed=3))
    assert not np.array_equal(G, gaussian_features(500, 384, seed=4))


# ------------------------------------------------------------------ untrained model
def test_random_init_differs_from_pretrained_and_is_reproducible_by_seed(minilm):
    texts = ["a violin", "what you would do with a hammer"]
    layers = [0, 3, 6]
    pre = minilm.embed(texts, layers)
    r1 = TextExtractor("builtin:minilm", weights="random", seed=7)
    a = r1.embed(texts, layers)
    b = TextExtractor("builtin:minilm", weights="random", seed=7).embed(texts, layers)
    c = TextExtractor("builtin:minilm", weights="random", seed=8).embed(texts, layers)
    assert a.shape == pre.shape == (2, 3, 384)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c, atol=1e-3)
    for j in range(len(layers)):  # every layer, the embeddings included, comes from other weights
        assert np.abs(a[:, j] - pre[:, j]).max() > 0.1
    # transformers' own init: BERT's normal(0, initializer_range) on the linear layers
    w = r1._model.encoder.layer[0].attention.self.query.weight.detach().numpy()
    assert abs(w.std() - r1._model.config.initializer_range) < 0.002
    # caches never mix: the fingerprint names the init and seed
    fps = {minilm.fingerprint(), r1.fingerprint(), TextExtractor("builtin:minilm", weights="random", seed=8).fingerprint()}
    assert len(fps) == 3
    with pytest.raises(ValueError, match="weights="):
        TextExtractor("builtin:minilm", weights="untrained")


def test_random_init_leaves_the_global_torch_rng_alone():
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TextExtractor("builtin:minilm", weights="random", seed=1).load()
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------ config
def test_controls_config_is_validated(tmp_path):
    exp = load_config(DEMO)
    raw = exp.model_dump(mode="json")
    raw["analysis"]["controls"] = dict(prompts=["scrambled"], feature_prompts=["nope"])
    bad = tmp_path / "bad.yaml"
    import yaml

    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="feature_prompts"):
        load_config(bad)
    raw["analysis"]["controls"] = dict(prompts=["shuffled"])
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="analysis.controls.prompts"):
        load_config(bad)
    with pytest.raises(ValueError, match="placeholder"):
        ControlSpec(neutral_prompt="Look at the image.")
    raw["analysis"]["controls"] = None
    raw["models"][0].update(weights="random", init_seed=3)
    bad.write_text(yaml.safe_dump(raw))
    assert load_config(bad).models[0].weights == "random"


def test_untrained_model_is_paired_with_the_pretrained_one_of_the_same_source():
    exp = load_config(DEMO)
    rnd = exp.models[0].model_copy(update=dict(name="MiniLM-random", weights="random", init_seed=1))
    other = exp.models[0].model_copy(update=dict(name="Other", source="builtin:other"))
    exp.models += [rnd, other]
    X = np.zeros((4, 2))
    spaces = [pipeline.FeatureSpace(f"{m}/{p}/L{L}", X, "model", model=m, prompt=p, layer=L)
              for m in ("MiniLM-L6", "MiniLM-random", "Other") for p in ("unprompted", "action") for L in (0, 3)]
    spaces = [s for s in spaces if s.name != "MiniLM-random/action/L0"]  # a layer the control lacks is not paired
    spaces += [pipeline.FeatureSpace(f"baseline/{b}", X, "baseline") for b in ("onoff", "category", "category_shuffled")]
    pairs = control_pairs_for_models(exp, spaces)
    untrained = {(p["effect"], p["control"]) for p in pairs if p["control_kind"] == "untrained"}
    assert untrained == {(f"MiniLM-L6/{p}/L{L}", f"MiniLM-random/{p}/L{L}")
                         for p, L in [("unprompted", 0), ("unprompted", 3), ("action", 3)]}
    assert {(p["effect"], p["control"]) for p in pairs if p["control_kind"] != "untrained"} == {
        ("baseline/category", "baseline/category_shuffled"), ("baseline/category", "baseline/onoff")}


# ------------------------------------------------------------------ paired reporting
def test_controls_table_matches_paired_test_and_marks_survivors():
    runs = np.arange(8)
    rng = np.random.default_rng(0)
    base = rng.normal(0.3, 0.05, 8)
    rs = pd.concat([
        pd.DataFrame(dict(space="effect", run=runs, mean_r=base + 0.02 + rng.normal(0, 0.002, 8))),
        pd.DataFrame(dict(space="control", run=runs, mean_r=base)),
        pd.DataFrame(dict(space="same", run=runs, mean_r=base + rng.normal(0, 0.01, 8))),
    ])
    pairs = [dict(effect="effect", control="control", control_kind="scrambled"),
             dict(effect="same", control="control", control_kind="neutral"),
             dict(effect="effect", control="not-fitted", control_kind="gaussian")]
    tab = controls_table(rs, pairs, "mean_r", alpha=0.05)
    assert list(tab.control_kind) == ["scrambled", "neutral"]  # pairs whose spaces were not fitted are left out
    ref = paired_test(rs[rs.space == "effect"].mean_r.to_numpy(), base)
    row = tab.iloc[0]
    assert row.mean_diff == pytest.approx(ref["mean_diff"]) and row.p == pytest.approx(ref["p_wilcoxon"])
    assert row.n_better == 8 and row.survives
    assert not tab.iloc[1].survives


# ------------------------------------------------------------------ planted prompt effect vs planted null
def _planted_study(drive: np.ndarray, n_runs: int = 8, n_vox: int = 60, seed: int = 0) -> pipeline.StudyData:
    """Every noun once per run (random order, 1 TR each); voxels driven by the top-8 PCs of ``drive``."""
    rng = np.random.default_rng(seed)
    n = len(NOUNS)
    runs = np.repeat(np.arange(n_runs), n)
    design = np.zeros((n_runs * n, n), np.float32)
    for r in range(n_runs):
        design[np.arange(r * n, (r + 1) * n), rng.permutation(n)] = 1
    U = np.linalg.svd(drive - drive.mean(0), full_matrices=False)[0][:, :8]
    signal = design @ (U / U.std(0)) @ rng.standard_normal((8, n_vox))
    Y = (signal / signal.std(0) + rng.standard_normal(signal.shape)).astype(np.float32)
    rec = Recording(data=Y, runs=runs, tr=2.0, mask_img=nib.Nifti1Image(np.ones((n_vox, 1, 1), np.uint8), np.eye(4)))
    return pipeline.StudyData(recording=rec, events=None, stimuli=NOUNS, design=design)


def test_planted_prompt_effect_survives_scrambled_control_and_token_null_does_not(minilm, tmp_path):
    exp = load_config(DEMO)
    exp.prompts = dict(PROMPTS)
    exp.models[0].layers = [LAYER]
    exp.analysis.reference = f"MiniLM-L6/unprompted/L{LAYER}"
    exp.analysis.responsive_fraction = 1.0
    exp.analysis.metric = "mean_r"
    exp.analysis.baselines = []
    exp.analysis.partitions = []
    exp.timing.delays = [0]
    exp.analysis.controls = ControlSpec(prompts=["scrambled"], layer=LAYER)
    feats = {"MiniLM-L6": {p: minilm.embed([t.format(stimulus=s) for s in NOUNS], [LAYER]) for p, t in PROMPTS.items()}}
    meta = {"MiniLM-L6": dict(layers=[LAYER], n_layers=6, n_tokens={})}
    # planted null: the brain reads the prompt's tokens but not their order (features averaged over other scrambles)
    bag = np.mean([minilm.embed([scramble_prompt(PROMPTS["action"], 100 + k).format(stimulus=s) for s in NOUNS],
                                [LAYER])[:, 0] for k in range(6)], 0)
    store = FeatureStore(tmp_path / "cache")
    result = {}
    for case, drive in (("effect", feats["MiniLM-L6"]["action"][:, 0]), ("null", bag)):
        data = _planted_study(drive)
        spaces = pipeline.build_feature_spaces(data, feats, meta, exp.models, exp.analysis.baselines, exp.seed)
        extra, pairs = control_spaces(exp, data, feats, meta, store, extractor_for=lambda spec: minilm)
        assert [s.name for s in extra] == [f"MiniLM-L6/action~scrambled/L{LAYER}"]
        run_scores, _, _ = pipeline.cross_validate(exp, data, spaces + extra)
        result[case] = controls_table(run_scores, pairs, "mean_r").set_index("control_kind")
    eff, null = result["effect"], result["null"]
    # the planted prompt effect beats its scrambled control in (almost) every held-out run
    assert eff.loc["scrambled", "survives"] and eff.loc["scrambled", "n_better"] >= 7
    assert eff.loc["empty_instruction", "survives"]
    # the planted null still shows a gain over the bare noun (extra tokens) ... which its scrambled control removes
    assert null.loc["empty_instruction", "mean_diff"] > 0
    assert not null.loc["scrambled", "survives"]
    assert abs(null.loc["scrambled", "mean_diff"]) < 0.25 * eff.loc["scrambled", "mean_diff"]
    # token counts are recorded: scrambling keeps them
    assert eff.loc["scrambled", "tokens_effect"] == eff.loc["scrambled", "tokens_control"]


def test_length_mismatched_control_prompt_warns(minilm, tmp_path):
    exp = load_config(DEMO)
    exp.prompts = dict(PROMPTS)
    exp.models[0].layers = [LAYER]
    exp.analysis.controls = ControlSpec(prompts=["neutral"], layer=LAYER, max_token_difference=2,
                                        neutral_prompt="please look very carefully at this lovely little {stimulus} now")
    nouns = NOUNS[:4]
    design = np.eye(4, dtype=np.float32).repeat(2, 0)
    rec = Recording(data=np.zeros((8, 2), np.float32), runs=np.repeat([0, 1], 4), tr=2.0,
                    mask_img=nib.Nifti1Image(np.ones((2, 1, 1), np.uint8), np.eye(4)))
    data = pipeline.StudyData(recording=rec, events=None, stimuli=nouns, design=design)
    feats = {"MiniLM-L6": {p: minilm.embed([t.format(stimulus=s) for s in nouns], [LAYER]) for p, t in PROMPTS.items()}}
    meta = {"MiniLM-L6": dict(layers=[LAYER], n_layers=6, n_tokens={})}
    with pytest.warns(UserWarning, match="differ by up to .* tokens"):
        spaces, pairs = control_spaces(exp, data, feats, meta, FeatureStore(tmp_path), extractor_for=lambda s: minilm)
    assert [p["control_kind"] for p in pairs] == ["neutral", "empty_instruction"]
    assert pairs[0]["tokens_control"] - pairs[0]["tokens_effect"] == 3  # 9 instruction words against 6
    assert len(meta["MiniLM-L6"]["n_tokens"]["~neutral"]) == len(nouns)  # recorded for the manifest
    # within tolerance: no warning; in-context prompts add a space and a pair, their long context is not warned about
    exp.analysis.controls.max_token_difference = 50
    exp.analysis.controls.in_context = InContextSpec(k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spaces, pairs = control_spaces(exp, data, feats, meta, FeatureStore(tmp_path), extractor_for=lambda s: minilm)
    assert [s.name for s in spaces] == [f"MiniLM-L6/~neutral/L{LAYER}", f"MiniLM-L6/action~icl2/L{LAYER}"]
    icl = [p for p in pairs if p["control_kind"] == "in_context"]
    assert len(icl) == 1 and icl[0]["tokens_control"] > 2 * icl[0]["tokens_effect"]
    assert meta["MiniLM-L6"]["texts"]["action~icl2"][0].endswith(PROMPTS["action"].format(stimulus=nouns[0]))
