"""The gameplay-frames stimulus format and kind: baseline models, piece by piece (the study runs in
test_study_gameplay.py)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from brainalign.config import Experiment, ModelSpec
from brainalign.features.baselines import motion_energy_features, pixel_features
from brainalign.features.frame_baselines import frame_baseline_features, kept_frame_rate
from brainalign.study.gameplay import frame_path, gameplay_design, read_frame


def _frames(onsets_by_run: dict[int, list[float]]) -> pd.DataFrame:
    rows = [dict(run=r, onset=t, stimulus=f"g_p0_f{k:05d}") for r, ts in onsets_by_run.items() for k, t in enumerate(ts)]
    return pd.DataFrame(rows)


def test_design_averages_the_frames_of_each_tr():
    # run 1: TR 0 empty, TR 1 has 2 frames, TR 2 has 1; run 2: TR 0 has 3 frames (max_frames=2 keeps 2)
    frames = _frames({1: [2.1, 3.0, 4.5], 2: [0.1, 0.9, 1.5]})
    runs = np.array([1, 1, 1, 2, 2])
    used, design, windows = gameplay_design(frames, runs, tr=2.0, max_frames=2)
    D = design.toarray()
    assert D.shape == (5, used.size)
    np.testing.assert_allclose(D.sum(1), [0, 1, 1, 1, 0])
    brightness = np.arange(len(frames), dtype=float)  # a per-frame feature = its row number
    per_tr = D @ brightness[used]
    np.testing.assert_allclose(per_tr, [0, (0 + 1) / 2, 2, (3 + 5) / 2, 0])  # newest frame of a window kept
    assert list(windows["n_frames"]) == [0, 2, 1, 2, 0]


def test_design_rejects_interleaved_runs():
    with pytest.raises(ValueError, match="contiguous"):
        gameplay_design(_frames({1: [0.5], 2: [0.5]}), np.array([1, 2, 1]), tr=2.0)


def test_frame_files_follow_the_documented_layout_and_are_checked(tmp_path):
    from PIL import Image

    p = frame_path(tmp_path, "sub-03", 2, "vgfmri4_zelda_p1_f00012", "png")
    assert p == tmp_path / "sub-03" / "run-02" / "vgfmri4_zelda_p1_f00012.png"
    p.parent.mkdir(parents=True)
    rgba = np.zeros((6, 7, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(p)
    arr = read_frame(p)
    assert arr.shape == (6, 7, 3) and arr.dtype == np.uint8 and (arr[..., 0] == 200).all()
    with pytest.raises(FileNotFoundError, match="VGDL"):
        read_frame(p.with_name("missing.png"))
    np.save(tmp_path / "bad.npy", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        read_frame(tmp_path / "bad.npy")


def _exp(stimuli: dict, models: list[dict]) -> dict:
    return dict(name="t", brain=dict(format="bids", options=dict(dataset="ds004323", task="gameplay")),
                stimuli=stimuli, models=models, prompts=dict(a="Which key next in this {stimulus}?"),
                analysis=dict(baselines=[], reference="P/none/L0", unprompted=None))


GAMEPLAY = dict(format="gameplay-frames")


def test_config_validates_baseline_models():
    exp = Experiment.model_validate(_exp(GAMEPLAY, [dict(name="P", kind="baseline", baseline="pixels",
                                                          options=dict(size=[8, 8]))]))
    assert exp.models[0].prompts == "none" and exp.prompts_of(exp.models[0]) == {"none": "{stimulus}"}
    assert exp.stimuli.max_frames == 4 and exp.stimuli.lead_in == 14.0
    bad = [
        (dict(name="P", kind="baseline"), "no `baseline`"),
        (dict(name="P", kind="baseline", baseline="pixels", prompts=["a"]), "reads no prompt"),
        (dict(name="P", kind="multimodal", source="x", baseline="pixels"), "belong to kind: baseline"),
        (dict(name="P", kind="multimodal"), "source is missing"),
    ]
    for model, msg in bad:
        with pytest.raises(ValueError, match=msg):
            Experiment.model_validate(_exp(GAMEPLAY, [model]))
    with pytest.raises(ValueError, match="frame baseline"):
        Experiment.model_validate(_exp(dict(format="tr-labels", events="e.txt", labels={1: "x"}),
                                       [dict(name="P", kind="baseline", baseline="pixels")]))


@pytest.mark.parametrize("options, msg", [
    (dict(field="q"), r"options.path: Field required"),
    (dict(path="d.bson"), r"options.field: Field required"),
    (dict(path="d.bson", field="q", agent="x.zip"), r"options.agent: Extra inputs are not permitted"),
    (dict(path="d.bson", field="q", time_unit="ms"), r"time_unit='ms' needs time_field"),
    (dict(path="d.bson", field="q", time_unit="frames"), r"options.time_unit: Input should be 'tr', 'ms' or 's'"),
    (dict(path="d.bson", field="q", where={"subj_id": "{subject}"}), r"does not select a run"),
    (dict(path="d.bson", field="q", where={"subj_id": "{subj}", "run_id": "{run}"}), r"other placeholders"),
])
def test_regressor_options_are_checked_when_the_config_loads(options, msg):
    """baseline: bson_regressors: RegressorOptions rejects a missing or unknown option, an untimed unit and a
    ``where`` that cannot select each BOLD run, naming the model and the option."""
    model = dict(name="DDQN", kind="baseline", baseline="bson_regressors", options=options)
    with pytest.raises(ValueError, match=r"models\[DDQN\] \(baseline: bson_regressors\).*" + msg):
        Experiment.model_validate(_exp(GAMEPLAY, [model]))
    ok = Experiment.model_validate(_exp(GAMEPLAY, [dict(model, options=dict(path="d.bson", field="q"))]))
    assert ok.models[0].options == dict(path="d.bson", field="q")  # defaults: where subj_id/run_id, TR order
    with pytest.raises(ValueError, match="has no runs of frames"):
        Experiment.model_validate(_exp(dict(format="nsd-images"), [dict(model, options=dict(path="d", field="q"))]))


class _Data:
    """The StudyData fields a frame baseline reads."""

    def __init__(self, frames, events):
        self.frames, self.events = frames, events
        self.recording = None

    def load_stimuli(self):
        return list(self.frames)


def test_frame_baselines_match_the_baseline_functions_run_by_run():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    events = pd.DataFrame(dict(run=[1] * 6 + [2] * 4, onset=np.r_[np.arange(6) * 0.5, np.arange(4) * 0.5]))
    assert kept_frame_rate(events) == pytest.approx(2.0)
    exp = Experiment.model_validate(_exp(GAMEPLAY, [dict(name="P", kind="baseline", baseline="pixels",
                                                          options=dict(size=[4, 4]))]))
    feats, meta = frame_baseline_features(exp.models[0], exp.stimuli, exp.seed, _Data(frames, events))
    np.testing.assert_allclose(feats["none"][:, 0], pixel_features(frames, (4, 4)))
    assert meta["layers"] == [0] and meta["n_layers"] == 1
    spec = ModelSpec(name="M", kind="baseline", baseline="motion_energy", options=dict(size=[8, 8], spatial_freqs=[2.0]))
    feats, _ = frame_baseline_features(spec, exp.stimuli, exp.seed, _Data(frames, events))
    # fps estimated from the onsets (2 Hz), temporal filters never cross the run boundary
    kw = dict(fps=2.0, size=(8, 8), spatial_freqs=[2.0], temporal_freqs=(0.0, 0.5, 1.0))
    expected = np.concatenate([motion_energy_features(frames[:6], **kw), motion_energy_features(frames[6:], **kw)])
    np.testing.assert_allclose(feats["none"][:, 0], expected, rtol=1e-5, atol=1e-6)


def test_gameplay_config_prompts_are_the_length_checked_pairs():
    """The config's action/reasoning prompts are GAMEPLAY_PROMPT_PAIRS verbatim (their token counts are checked in
    tests of features/prompts.py), paired by name, so the config cannot drift from the matched pairs."""
    from pathlib import Path

    from brainalign.config import load_config
    from brainalign.features.prompts import GAMEPLAY_PROMPT_PAIRS

    exp = load_config(Path(__file__).resolve().parents[1] / "configs" / "gameplay_action_vs_reasoning.yaml")
    first, rest = GAMEPLAY_PROMPT_PAIRS[0], GAMEPLAY_PROMPT_PAIRS[1:]
    assert (exp.prompts["action"], exp.prompts["reasoning"]) == (first.action, first.reasoning)
    for pair in rest:
        assert (exp.prompts[f"action_{pair.name}"], exp.prompts[f"reasoning_{pair.name}"]) == (pair.action, pair.reasoning)
    assert set(exp.prompts) == {"action", "reasoning", "neutral"} | {f"{r}_{p.name}" for p in rest
                                                                      for r in ("action", "reasoning")}
