"""Controls of multimodal models through the config: scrambled and neutral prompts, in-context prompts with example
images, stimulus-shuffled features — on a miniature NSD whose voxels are tuned to image brightness."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "nsd_instruction_tuned_image.yaml"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from brainalign import pipeline
    from brainalign.config import load_config
    from brainalign.features.store import FeatureStore
    from brainalign.features.tiny_swap import tiny_models
    from brainalign.testing.fixtures import write_nsd

    root = tmp_path_factory.mktemp("nsd")
    write_nsd(root, subjects=(1,), n_sessions=1)
    cache = tmp_path_factory.mktemp("cache")
    exp = load_config(CONFIG, [
        "brain.subjects=['1']", "brain.options.sessions=[1]", "analysis.n_permutations=0", "analysis.partitions=[]",
        "models=[{name: LLaVA, source: x, kind: multimodal, model_type: llava, pooling: stimulus, layers: [-1]},"
        " {name: ViT, source: y, kind: multimodal, model_type: vit, prompts: none}]",
        "prompts={IC: 'What is the caption of the image?', IU1: 'Describe the most dominant color in the image.'}",
        "analysis.reference=ViT/none/L-1",
        "analysis.controls={prompts: [scrambled, neutral], features: [stimulus_shuffled], layer: 1.0,"
        " in_context: {k: 1, with_stimuli: true}}",
    ])
    exp = exp.model_copy(update=dict(models=tiny_models(exp.models, cache / "tiny", seed=exp.seed)))
    res = pipeline.run(exp, base_dir=CONFIG.parent, store=FeatureStore(cache), data_root=root)
    return exp, res


def test_every_multimodal_control_is_fitted_and_paired_with_its_effect(results):
    exp, res = results
    ctl = res.tables["controls"]
    kinds = set(ctl.loc[ctl.model == "LLaVA", "control_kind"])
    assert {"scrambled", "neutral", "in_context", "stimulus_shuffled"} <= kinds
    spaces = set(res.tables["spaces"]["space"])
    last = int(res.tables["spaces"].query("model == 'LLaVA'")["layer"].max())
    for name in (f"LLaVA/IC~scrambled/L{last}", f"LLaVA/~neutral/L{last}", f"LLaVA/IC~icl1/L{last}",
                 f"LLaVA/IC/L{last}~stimulus_shuffled"):
        assert name in spaces, sorted(spaces)
    # the scrambled prompt has the same words as its prompt: a BPE tokenizer splits a word differently at the start
    # of the text, so the counts may differ by a token or two, never by a length confound
    sc = ctl[(ctl.control_kind == "scrambled") & (ctl.prompt == "IC")].iloc[0]
    assert sc.tokens_effect > 0 and abs(sc.tokens_effect - sc.tokens_control) <= 2


def test_planted_tuning_survives_its_stimulus_shuffled_control(results):
    _, res = results
    ctl = res.tables["controls"]
    row = ctl[(ctl.control_kind == "stimulus_shuffled") & (ctl.prompt == "IC")].iloc[0]
    # images drive the voxels: shuffling which image gets which features must cost accuracy in every held-out fold
    assert row.mean_effect > 0.3 and row.mean_control < row.mean_effect - 0.2
    assert row.n_better == row.n


def test_in_context_examples_change_the_features_but_not_their_shape(results):
    _, res = results
    runs = res.tables["run_scores"].set_index(["space", "run"])["mean_r"]
    last = int(res.tables["spaces"].query("model == 'LLaVA'")["layer"].max())
    plain, icl = runs[f"LLaVA/IC/L{last}"], runs[f"LLaVA/IC~icl1/L{last}"]
    assert len(plain) == len(icl) and not np.allclose(plain.to_numpy(), icl.to_numpy())
