"""--models tiny: small stand-ins keep the config's distinctions between checkpoints."""
from __future__ import annotations

import numpy as np
from safetensors.numpy import load_file

from brainalign.config.experiment import ModelSpec
from brainalign.features.tiny_swap import tiny_models


def _weights(folder) -> dict:
    return load_file(str(next(iter(sorted(folder.glob("*.safetensors"))))))


def test_two_checkpoints_of_one_architecture_get_different_tiny_weights(tmp_path):
    # an instruction-tuned model and its base share model_type; were their stand-ins equal, a miniature could never
    # tell the arms of row 6 apart. The same source twice (its untrained control) keeps one folder.
    specs = [ModelSpec(name="IT", source="org/vit-it", kind="multimodal", model_type="vit"),
             ModelSpec(name="base", source="org/vit-base", kind="multimodal", model_type="vit"),
             ModelSpec(name="IT-random", source="org/vit-it", kind="multimodal", model_type="vit", weights="random")]
    it, base, rand = tiny_models(specs, tmp_path, seed=3)
    assert it.source == rand.source != base.source
    a, b = _weights(type(tmp_path)(it.source)), _weights(type(tmp_path)(base.source))
    assert a.keys() == b.keys()
    assert not all(np.array_equal(a[k], b[k]) for k in a)
    assert it.source.endswith("vit-seed3")  # the first source keeps the experiment's seed (cached stand-ins stay)
