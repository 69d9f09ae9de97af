"""Registry: model type -> adapter, offline and safe loading, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from brainalign.features import registry
from brainalign.features.extract import extract_features
from brainalign.features.registry import load_extractor, register_adapter, supported_model_types

from vlm_fixtures import PROMPTS, extractors, images, model_dirs, tiny_llava_dir, tiny_qwen_dir  # noqa: F401 - pytest fixtures


def test_supported_types_include_the_vlms():
    expected = {"qwen2_5_vl", "qwen2_vl", "llava", "llava_next", "internvl", "idefics2", "instructblip", "qwen2_audio",
                "vit", "clip", "videomae", "vivit", "wav2vec2", "audio-spectrogram-transformer"}
    assert expected <= set(supported_model_types())


def test_unknown_model_type_lists_supported(tmp_path):
    from transformers import TimeSeriesTransformerConfig

    TimeSeriesTransformerConfig(prediction_length=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"model_type='time_series_transformer'.*Supported model types: .*llava"):
        load_extractor(tmp_path)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"no readable config.json"):
        load_extractor(tmp_path / "nowhere")


def test_pickle_weights_are_refused(tmp_path, tiny_llava_dir):
    """safetensors only: a folder with only a pickled checkpoint does not load."""
    import shutil

    import torch
    from safetensors.torch import load_file

    for f in tiny_llava_dir.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, tmp_path / f.name)
    torch.save(load_file(tiny_llava_dir / "model.safetensors"), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError):
        load_extractor(tmp_path)


def test_trust_remote_code_warns(tiny_llava_dir):
    with pytest.warns(UserWarning, match=r"trust_remote_code=True.*run with your permissions"):
        ex = load_extractor(tiny_llava_dir, trust_remote_code=True)
    assert type(ex).__name__ == "LlavaExtractor"


def test_register_adapter_refuses_silent_overwrite():
    with pytest.raises(ValueError, match=r"already has an adapter"):
        register_adapter("llava", lambda path, **kw: None)


def test_qwen_fallback_processor_is_recorded(extractors):
    meta = extractors["qwen2_5_vl"].meta
    assert meta["processor"].startswith(("AutoProcessor", "AutoTokenizer + AutoImageProcessor"))


def test_extract_features_shape_and_parity(extractors, model_dirs, images):
    from PIL import Image

    ex = extractors["llava"]
    arr = extract_features(ex, images, PROMPTS, layers=[-1, 0], pooling="last")
    assert arr.shape == (3, 2, 2, 64) and arr.dtype == np.float32
    direct = ex.extract(images, PROMPTS, [0, -1], pooling="last")
    for i, name in enumerate(PROMPTS):
        np.testing.assert_array_equal(arr[i], direct[name].values)
    # a folder path loads through the registry; PIL images and a list of prompts are accepted
    pil = [Image.fromarray(im) for im in images]
    arr2 = extract_features(model_dirs["llava"], pil, list(PROMPTS.values()), layers=[-1, 0], pooling="last")
    np.testing.assert_allclose(arr2, arr, atol=1e-6)


def test_extract_features_rejects_non_extractor(images):
    with pytest.raises(ValueError, match=r"model must be a model id, a local folder or an Extractor"):
        extract_features(object(), images, PROMPTS)


def test_config_json_model_type_is_what_is_read(tiny_qwen_dir):
    assert registry.read_model_type(tiny_qwen_dir) == json.loads((tiny_qwen_dir / "config.json").read_text())[
        "model_type"
    ]


def test_processor_chat_template_file_is_used(tmp_path, tiny_qwen_dir, extractors, images):
    """A checkpoint whose template sits only in the processor's chat_template.json still loads."""
    import shutil

    from brainalign.features.tiny.models import QWEN_CHAT_TEMPLATE

    for f in tiny_qwen_dir.iterdir():
        if f.name != "chat_template.jinja":
            shutil.copy(f, tmp_path / f.name)
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(cfg))
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": QWEN_CHAT_TEMPLATE}))
    ex = load_extractor(tmp_path)
    assert ex.chat_template == QWEN_CHAT_TEMPLATE
    got = ex.extract(images, PROMPTS, [-1], pooling="last")
    ref = extractors["qwen2_5_vl"].extract(images, PROMPTS, [-1], pooling="last")
    np.testing.assert_array_equal(got["caption"].values, ref["caption"].values)
    (tmp_path / "chat_template.json").unlink()
    with pytest.raises(ValueError, match=r"no chat template found"):
        load_extractor(tmp_path)


def test_bfloat16_loading_runs_and_stays_close(tiny_llava_dir, extractors, images):
    ex16 = load_extractor(tiny_llava_dir, dtype="bfloat16")
    assert ex16.model.dtype == __import__("torch").bfloat16
    got = ex16.extract(images, PROMPTS, [-1], pooling="mean")["caption"].values
    ref = extractors["llava"].extract(images, PROMPTS, [-1], pooling="mean")["caption"].values
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.99
    with pytest.raises(ValueError, match=r"dtype='float8'"):
        load_extractor(tiny_llava_dir, dtype="float8")


def test_fingerprint_and_stimulus_digest(extractors, model_dirs, images):
    from PIL import Image

    from brainalign.features.hf_multimodal import Video, stimulus_digest
    from brainalign.features.registry import fingerprint

    qwen, llava = extractors["qwen2_5_vl"], extractors["llava"]
    a = fingerprint(qwen, pooling="mean", component="language")
    assert a == fingerprint(qwen, component="language", pooling="mean")  # order-free, stable
    assert a != fingerprint(qwen, pooling="last", component="language")
    assert a != fingerprint(llava, pooling="mean", component="language")
    again = load_extractor(model_dirs["qwen2_5_vl"])  # same weights, new instance
    assert fingerprint(again, pooling="mean", component="language") == a
    d = stimulus_digest(images[0])
    assert d == stimulus_digest(Image.fromarray(images[0])) == stimulus_digest(images[0].copy())
    assert d != stimulus_digest(images[1]) and d != stimulus_digest([images[0]])
    assert stimulus_digest(Video([images[0]], fps=2)) != stimulus_digest(Video([images[0]], fps=4))
    wave = np.zeros(1600, np.float32)
    assert stimulus_digest(wave, sampling_rate=16000) != stimulus_digest(wave, sampling_rate=8000)


def test_hub_id_from_the_local_cache(tmp_path, tiny_llava_dir, extractors, images, monkeypatch):
    """A hub id already in the local Hugging Face cache loads offline, like a folder."""
    import shutil

    import huggingface_hub.constants

    from brainalign.features.registry import fingerprint, fingerprint_source

    commit = "0" * 40
    repo = tmp_path / "models--tiny-org--tiny-llava"
    shutil.copytree(tiny_llava_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    ex = load_extractor("tiny-org/tiny-llava")
    assert ex.model_id == "tiny-org/tiny-llava"
    got = ex.extract(images, PROMPTS, [-1], pooling="last")["caption"].values
    ref = extractors["llava"].extract(images, PROMPTS, [-1], pooling="last")["caption"].values
    np.testing.assert_array_equal(got, ref)
    # the fingerprint hashes the cached snapshot's content: same digest as the folder it was copied from
    fp_hub = fingerprint(ex, pooling="last")
    fp_dir = fingerprint_source(tiny_llava_dir, pooling="last")
    assert fp_hub.split("@")[1].split("|")[0] == fp_dir.split("@")[1].split("|")[0]
    with pytest.raises(ValueError, match=r"no readable config.json"):
        load_extractor("tiny-org/not-downloaded")
